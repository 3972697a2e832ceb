package v2store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	v2 "github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// v3kv is a v3 key of a listing case, written in order from revision 2.
type v3kv struct {
	key, value string
	lease      int64
}

// listingCase is a keyspace as v2 and v3 clients left it, and the GETs to
// answer from it.
type listingCase struct {
	name string
	kvs  []v3kv
	// leases: id → {seconds left, granted}; a lease not listed has expired.
	leases map[int64][2]int64
	gets   []op
}

var listingCases = []listingCase{
	{
		// Names sort; hidden names and directory records are no nodes; a
		// directory implied by a v3 key has no marker and takes the
		// lowest create revision below it as its indexes.
		name: "root",
		kvs: []v3kv{{key: "/b", value: "2"}, {key: "/a/"}, {key: "/a/x", value: "1"}, {key: "/_hidden", value: "h"},
			{key: "/c/d/e", value: "3"}, {key: "/.", value: "set"}, {key: "/a/.", value: "create"}, {key: "/B", value: "upper"}},
		gets: []op{
			get("/", v2.GetOptions{}, 200),
			get("/", v2.GetOptions{Recursive: true}, 200),
			get("/c", v2.GetOptions{}, 200),
			get("/c/d/e", v2.GetOptions{}, 200),
		},
	},
	{
		// A name that is a file and a directory lists as the directory.
		name: "file-and-directory",
		kvs:  []v3kv{{key: "/d/x", value: "1"}, {key: "/d/x/y", value: "2"}, {key: "/d/"}},
		gets: []op{get("/d", v2.GetOptions{}, 200), get("/d/x", v2.GetOptions{}, 200)},
	},
	{
		// /a-b and /a0 sort between /a and /a/ but are not below /a.
		name: "prefix-siblings",
		kvs:  []v3kv{{key: "/a", value: "file"}, {key: "/a-b", value: "2"}, {key: "/a/"}, {key: "/a/c", value: "1"}, {key: "/a0/"}},
		gets: []op{get("/a", v2.GetOptions{Recursive: true}, 200), get("/a-b", v2.GetOptions{}, 200), get("/a0", v2.GetOptions{}, 200)},
	},
	{
		// A leased file and directory show their TTL, rounded up and at
		// most the granted TTL; an expired lease shows none.
		name:   "ttl",
		kvs:    []v3kv{{key: "/t/", lease: 7}, {key: "/t/f", value: "1", lease: 8}, {key: "/t/g", value: "2", lease: 9}, {key: "/t/h", value: "3", lease: 10}},
		leases: map[int64][2]int64{7: {29, 30}, 8: {5, 5}, 10: {4, 60}},
		gets:   []op{get("/t", v2.GetOptions{Recursive: true}, 200), get("/t/f", v2.GetOptions{}, 200)},
	},
	{
		// Children beyond the first level appear only when recursive, and
		// hidden ones never.
		name: "nested",
		kvs: []v3kv{{key: "/n/"}, {key: "/n/1/"}, {key: "/n/1/a", value: "1a"}, {key: "/n/1/_h/x", value: "h"},
			{key: "/n/2/b/c", value: "2bc"}, {key: "/n/10", value: "10"}, {key: "/n/1/.", value: "set"}},
		gets: []op{get("/n", v2.GetOptions{}, 200), get("/n", v2.GetOptions{Recursive: true}, 200), get("/n/1/_h", v2.GetOptions{}, 200)},
	},
	{
		// An empty directory, and one whose only key is its record.
		name: "empty",
		kvs:  []v3kv{{key: "/e/"}, {key: "/r/.", value: "delete"}},
		gets: []op{get("/e", v2.GetOptions{Recursive: true}, 200), get("/r", v2.GetOptions{}, 200), get("/", v2.GetOptions{}, 200)},
	},
}

// TestListings answers GETs from keyspaces held in memory (no etcd): the
// directory trees, their order, what they leave out, and their indexes and
// TTLs, against testdata/listing-*.golden.
func TestListings(t *testing.T) {
	for _, c := range listingCases {
		t.Run(c.name, func(t *testing.T) {
			m := etcdtest.NewMem()
			var b strings.Builder
			b.WriteString("# keys (v3 key, value, lease, revision):\n")
			for _, kv := range c.kvs {
				w := m.Put("/v2"+kv.key, kv.value, kv.lease)
				fmt.Fprintf(&b, "#   %s %q %d %d\n", w.Key, kv.value, kv.lease, w.ModRevision)
			}
			for id, l := range c.leases {
				m.Grant(id, l[0], l[1])
			}
			s := v2.NewV3(m, "/v2")
			for i, o := range c.gets {
				ev, meta, err := s.Get(context.Background(), o.key, o.get)
				status, body, index := render(t, ev, meta, err)
				if status != o.want {
					t.Errorf("op %d %s: status %d, want %d: %s", i, o.describe(), status, o.want, body)
				}
				if index != uint64(m.Rev()) {
					t.Errorf("op %d %s: X-Etcd-Index %d, want %d", i, o.describe(), index, m.Rev())
				}
				// Expirations depend on the clock (render checked them).
				body = expirationRe.ReplaceAllString(body, `"expiration":"<expiration>"`)
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, []byte(body), "", "  "); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "\n> %s\n< %d X-Etcd-Index: %d\n%s", o.describe(), status, index, pretty.String())
			}
			checkGolden(t, "listing-"+c.name, b.String())
		})
	}
}
