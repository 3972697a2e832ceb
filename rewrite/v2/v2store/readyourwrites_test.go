package v2store_test

import (
	"context"
	"sync/atomic"
	"testing"

	v2 "github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// laggingMember passes calls to a real member, but answers serializable
// reads as a follower that has applied only up to stale (0: up to date),
// as the shim's own member may be when its writes went to the leader.
type laggingMember struct {
	grpc.ClientConnInterface
	stale atomic.Int64
	// linearizable counts the linearizable ranges.
	linearizable atomic.Int64
}

func (m *laggingMember) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	req, ok := args.(*pb.RangeRequest)
	if !ok || method != "/etcdserverpb.KV/Range" {
		return m.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
	}
	if !req.Serializable {
		m.linearizable.Add(1)
	}
	stale := m.stale.Load()
	if !req.Serializable || req.Revision != 0 || stale == 0 {
		return m.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
	}
	old := &pb.RangeRequest{Key: req.Key, RangeEnd: req.RangeEnd, Limit: req.Limit, KeysOnly: req.KeysOnly,
		CountOnly: req.CountOnly, Serializable: true, Revision: stale}
	if err := m.ClientConnInterface.Invoke(ctx, method, old, reply, opts...); err != nil {
		return err
	}
	reply.(*pb.RangeResponse).Header.Revision = stale
	return nil
}

// staleCache is a read cache that is as far behind as the lagging member.
type staleCache struct{ m *laggingMember }

func (c staleCache) Acquire(context.Context) (v2.Ranger, bool) { return c, true }

func (c staleCache) Range(ctx context.Context, r *pb.RangeRequest, _ ...grpc.CallOption) (*pb.RangeResponse, error) {
	out := &pb.RangeResponse{}
	rr := &pb.RangeRequest{Key: r.Key, RangeEnd: r.RangeEnd, Limit: r.Limit, KeysOnly: r.KeysOnly, CountOnly: r.CountOnly,
		Revision: r.Revision, Serializable: true}
	return out, c.m.Invoke(ctx, "/etcdserverpb.KV/Range", rr, out)
}

// A plain GET after a write through the same store reads that write, as a
// v2 client reads its own writes through one 3.4 member, although the
// member the store reads from has not applied it yet (the write went to the
// leader): the answer older than the write is read again linearizably.
func testReadYourWrites(t *testing.T, cc *grpc.ClientConn) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		store func(m *laggingMember) *v2.V3Store
	}{
		{"member read", func(m *laggingMember) *v2.V3Store { return v2.NewV3(m, "/ryw-member") }},
		{"read cache", func(m *laggingMember) *v2.V3Store { return v2.NewV3(m, "/ryw-cache").WithReadCache(staleCache{m}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &laggingMember{ClientConnInterface: cc}
			s := tc.store(m)
			first, _, err := s.Put(ctx, "/k", v2.SetOptions{Value: "1"})
			if err != nil {
				t.Fatal(err)
			}
			// The store's member stops applying here.
			m.stale.Store(int64(first.Node.ModifiedIndex))
			second, _, err := s.Put(ctx, "/k", v2.SetOptions{Value: "2"})
			if err != nil {
				t.Fatal(err)
			}
			before := m.linearizable.Load()
			ev, meta, err := s.Get(ctx, "/k", v2.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := ev.Node.Value; got == nil || *got != "2" || ev.Node.ModifiedIndex != second.Node.ModifiedIndex || meta.EtcdIndex < second.Node.ModifiedIndex {
				t.Fatalf("GET after the acknowledged write of 2 (index %d): value %q at %d, X-Etcd-Index %d",
					second.Node.ModifiedIndex, deref(ev.Node.Value), ev.Node.ModifiedIndex, meta.EtcdIndex)
			}
			if m.linearizable.Load() == before {
				t.Fatal("the stale answer was not read again linearizably")
			}
			// A store whose own writes are all applied reads serializably.
			m.stale.Store(0)
			before = m.linearizable.Load()
			if _, _, err := s.Get(ctx, "/k", v2.GetOptions{}); err != nil {
				t.Fatal(err)
			}
			if n := m.linearizable.Load() - before; n != 0 {
				t.Fatalf("%d linearizable reads for a member up to date with the store's writes, want 0", n)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
