package v2store_test

import (
	"context"
	"fmt"
	"path"
	"sort"
	"testing"

	v2 "github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"google.golang.org/grpc"
)

// testInOrder: POST names are 20 digits, equal to the createdIndex when no
// other writer interferes, and strictly increasing, also under a TTL and in
// the root directory.
func testInOrder(t *testing.T, cc *grpc.ClientConn) {
	ctx := context.Background()
	s := v2.NewV3(cc, "/unit-inorder")
	for _, c := range []struct {
		name, dir string
		opts      v2.SetOptions
	}{
		{"queue", "/queue", v2.SetOptions{Value: "job"}},
		{"nested new dir", "/a/b/queue", v2.SetOptions{Value: "job"}},
		{"with ttl", "/ttlq", v2.SetOptions{Value: "job", TTL: ttlp(60)}},
		{"root", "/", v2.SetOptions{Value: "job"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var names []string
			for i := 0; i < 5; i++ {
				ev, m, err := s.CreateInOrder(ctx, c.dir, c.opts)
				if err != nil {
					t.Fatal(err)
				}
				if ev.Action != v2.ActionCreate || !ev.IsCreated() {
					t.Errorf("action %s, created %v", ev.Action, ev.IsCreated())
				}
				dir, name := path.Split(ev.Node.Key)
				if want := path.Clean(c.dir) + "/"; dir != want && !(c.dir == "/" && dir == "/") {
					t.Errorf("key %s not directly under %s", ev.Node.Key, c.dir)
				}
				if want := fmt.Sprintf("%020d", ev.Node.CreatedIndex); name != want {
					t.Errorf("name %s, want %s (the createdIndex)", name, want)
				}
				if ev.Node.CreatedIndex != m.EtcdIndex || ev.Node.ModifiedIndex != m.EtcdIndex {
					t.Errorf("indexes %d/%d, X-Etcd-Index %d", ev.Node.CreatedIndex, ev.Node.ModifiedIndex, m.EtcdIndex)
				}
				names = append(names, ev.Node.Key)
			}
			if !sort.StringsAreSorted(names) {
				t.Errorf("names not increasing: %q", names)
			}
			got, _, err := s.Get(ctx, c.dir, v2.GetOptions{Sorted: true})
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, n := range got.Node.Nodes {
				if len(path.Base(n.Key)) == 20 {
					listed = append(listed, n.Key)
				}
			}
			if fmt.Sprint(listed) != fmt.Sprint(names) {
				t.Errorf("sorted listing %q, want creation order %q", listed, names)
			}
		})
	}
}
