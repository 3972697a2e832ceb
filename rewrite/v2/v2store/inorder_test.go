package v2store_test

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	v2 "github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// testInOrder: POST names are 20 digits, equal to the createdIndex when no
// other writer interferes, and strictly increasing, also under a TTL and in
// the root directory.
//
// "No other writer" has to be made true: the member is shared with the
// earlier subtests, whose TTL keys (one with the member's minimum lease,
// about 2 s) expire on the member's schedule, and an expiry is a write. One
// landing between a create's read of the revision and its transaction made
// the name one less than the createdIndex ("root": name 82, createdIndex
// 83), which the store allows. So each case first revokes every lease, and
// checks that each create got the revision right after the one it read.
func testInOrder(t *testing.T, cc *grpc.ClientConn) {
	ctx := context.Background()
	s := v2.NewV3(cc, "/unit-inorder")
	kv := etcdrpc.NewKVClient(cc)
	revision := func(t *testing.T) int64 {
		t.Helper()
		r, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("/"), CountOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
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
			revokeAll(t, cc)
			var names []string
			for i := 0; i < 5; i++ {
				before := revision(t)
				ev, m, err := s.CreateInOrder(ctx, c.dir, c.opts)
				if err != nil {
					t.Fatal(err)
				}
				if before+1 != int64(ev.Node.CreatedIndex) {
					t.Fatalf("created at %d, not at %d right after the revision read: another write came in between, so the name cannot be checked", ev.Node.CreatedIndex, before+1)
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

// revokeAll revokes every lease the member holds (their keys go with them),
// so none expires while a test counts on nobody else writing.
func revokeAll(t *testing.T, cc *grpc.ClientConn) {
	t.Helper()
	lc := etcdrpc.NewLeaseClient(cc)
	ls, err := lc.LeaseLeases(context.Background(), &pb.LeaseLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls.Leases {
		// One that expired meanwhile is not found: it is gone all the same.
		if _, err := lc.LeaseRevoke(context.Background(), &pb.LeaseRevokeRequest{ID: l.ID}); err != nil && !errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
			t.Fatalf("revoking lease %x: %v", l.ID, err)
		}
	}
}
