package v2store_test

import (
	"context"
	"path"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	v2 "github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// TestInOrderDeep: POSTs into directories deeper than one transaction can
// check parent by parent (etcd's --max-txn-ops), new and existing, as 3.4
// takes them; and the first POST into a new shallow directory makes it.
func TestInOrderDeep(t *testing.T) {
	_, cc := etcdtest.Start(t)
	ctx := context.Background()
	s := v2.NewV3(cc, "/unit-inorder-deep")
	for _, depth := range []int{1, 47, 60, 200} {
		dir := "/" + strings.Repeat("d/", depth) + "q"
		var last string
		for i := 0; i < 3; i++ {
			ev, _, err := s.CreateInOrder(ctx, dir, v2.SetOptions{Value: "x"})
			if err != nil {
				t.Fatalf("depth %d, create %d: %v", depth, i, err)
			}
			if path.Dir(ev.Node.Key) != dir || ev.Node.Key <= last {
				t.Fatalf("depth %d: key %s after %s", depth, ev.Node.Key, last)
			}
			last = ev.Node.Key
		}
		got, _, err := s.Get(ctx, dir, v2.GetOptions{Sorted: true})
		if err != nil || len(got.Node.Nodes) != 3 || got.Node.Nodes[2].Key != last {
			t.Fatalf("depth %d: listing %v %v", depth, got, err)
		}
	}
	// A file on a deep path is still 104, naming it.
	file := "/" + strings.Repeat("f/", 100) + "file"
	if _, _, err := s.Put(ctx, file, v2.SetOptions{Value: "x"}); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.CreateInOrder(ctx, file+"/q", v2.SetOptions{Value: "x"})
	if e, ok := err.(*v2.Error); !ok || e.Code != v2.EcodeNotDir || e.Cause != file {
		t.Errorf("POST below a deep file: %v, want 104 naming %s", err, file)
	}
}
