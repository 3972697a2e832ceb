package v2migrate

import (
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

func TestHighestInOrder(t *testing.T) {
	dir := func(key string, nodes ...*v2store.Node) *v2store.Node {
		return &v2store.Node{Key: key, Dir: true, Nodes: nodes}
	}
	file := func(key string) *v2store.Node { return &v2store.Node{Key: key} }
	for _, c := range []struct {
		name   string
		root   *v2store.Node
		top    uint64
		topDir string
	}{
		{"none", dir("", file("/a"), dir("/d", file("/d/x"))), 0, ""},
		{"nested queue", dir("", file("/00000000000000000007"), dir("/jobs", dir("/jobs/q", file("/jobs/q/00000000000000003012"), file("/jobs/q/00000000000000003001")))), 3012, "/jobs/q"},
		{"an in-order directory", dir("", dir("/q", dir("/q/00000000000000000100", file("/q/00000000000000000100/00000000000000000090")))), 100, "/q"},
		{"look-alikes", dir("", file("/q/0000000000000000001x"), file("/q/000000000000000000010"), file("/q/99999999999999999999")), 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			top, d := highestInOrder(c.root)
			if top != c.top || d != c.topDir {
				t.Errorf("highestInOrder = %d in %q, want %d in %q", top, d, c.top, c.topDir)
			}
		})
	}
}
