package v2store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

func deepKey(root string, levels int) string {
	return root + strings.Repeat("/a", levels)
}

// TestDeepKeys: v2 keys 200 and 500 levels deep are written, read, and
// refused with 3.4's errors, under etcd's default --max-txn-ops (128); no
// transaction the shim sends grows with the square of the depth.
func TestDeepKeys(t *testing.T) {
	_, cc := etcdtest.Start(t)
	rec := &txnRecorder{ClientConnInterface: cc}
	s := v2store.NewV3(rec, "")
	ctx := context.Background()
	code := func(err error) int {
		var ve *v2store.Error
		if errors.As(err, &ve) {
			return ve.Code
		}
		if err != nil {
			t.Fatalf("not a v2 error: %v", err)
		}
		return 0
	}
	for _, levels := range []int{200, 500} {
		root := "/deep" + strings.Repeat("x", levels/100)
		p := deepKey(root, levels)
		rec.take()
		if _, _, err := s.Put(ctx, p, v2store.SetOptions{Value: "v"}); err != nil {
			t.Fatalf("%d levels: set: %v", levels, err)
		}
		size := 0
		for _, txn := range rec.take() {
			size = max(size, txn.Size())
		}
		// The markers the write must make are the parents' full paths
		// (AncestorBytes in all, as 3.4's store keeps each node's path):
		// the transaction names each twice (the compare and the put of
		// its create-if-absent) and nothing more per parent.
		if limit := 2*v2store.AncestorBytes(p) + 64*levels + 4096; size > limit {
			t.Errorf("%d levels: a %d-byte transaction; the markers are %d bytes (limit %d)", levels, size, v2store.AncestorBytes(p), limit)
		}
		ev, _, err := s.Get(ctx, p, v2store.GetOptions{})
		if err != nil || *ev.Node.Value != "v" {
			t.Fatalf("%d levels: get: %+v %v", levels, ev, err)
		}
		// A directory in the middle exists, and survives as in 3.4.
		mid := deepKey(root, levels/2)
		if ev, _, err := s.Get(ctx, mid, v2store.GetOptions{}); err != nil || !ev.Node.Dir {
			t.Fatalf("%d levels: the middle directory: %+v %v", levels, ev, err)
		}
		// Errors as 3.4 names them.
		if c := code(second(s.Put(ctx, p+"/b", v2store.SetOptions{Value: "x"}))); c != v2store.EcodeNotDir {
			t.Errorf("%d levels: set under a file: code %d, want 104", levels, c)
		}
		if c := code(second(s.Put(ctx, mid, v2store.SetOptions{Value: "x"}))); c != v2store.EcodeNotFile {
			t.Errorf("%d levels: set on a directory: code %d, want 102", levels, c)
		}
		no := false
		if c := code(second(s.Put(ctx, p, v2store.SetOptions{Value: "x", PrevExist: &no}))); c != v2store.EcodeNodeExist {
			t.Errorf("%d levels: create an existing key: code %d, want 105", levels, c)
		}
		if c := code(second(s.Put(ctx, p, v2store.SetOptions{Value: "y", PrevValue: "nope"}))); c != v2store.EcodeTestFailed {
			t.Errorf("%d levels: CAS: code %d, want 101", levels, c)
		}
		if c := code(second(s.Put(ctx, p+"/b/c", v2store.SetOptions{Value: "x", PrevValue: "v"}))); c != v2store.EcodeNotDir {
			t.Errorf("%d levels: CAS under a file: code %d, want 104", levels, c)
		}
		if c := code(second(s.Delete(ctx, mid, v2store.DeleteOptions{}))); c != v2store.EcodeNotFile {
			t.Errorf("%d levels: delete a directory: code %d, want 102", levels, c)
		}
		if c := code(second(s.Delete(ctx, p+"x", v2store.DeleteOptions{}))); c != v2store.EcodeKeyNotFound {
			t.Errorf("%d levels: delete a missing key: code %d, want 100", levels, c)
		}
		if _, _, err := s.Put(ctx, p, v2store.SetOptions{Value: "w", PrevValue: "v"}); err != nil {
			t.Fatalf("%d levels: CAS: %v", levels, err)
		}
		if _, _, err := s.Delete(ctx, p, v2store.DeleteOptions{}); err != nil {
			t.Fatalf("%d levels: delete: %v", levels, err)
		}
		if _, _, err := s.Put(ctx, p, v2store.SetOptions{Dir: true}); err != nil {
			t.Fatalf("%d levels: mkdir: %v", levels, err)
		}
		if _, _, err := s.Delete(ctx, root, v2store.DeleteOptions{Recursive: true}); err != nil {
			t.Fatalf("%d levels: rm -r: %v", levels, err)
		}
	}
}

func second(_ *v2store.Event, _ v2store.Meta, err error) error { return err }
