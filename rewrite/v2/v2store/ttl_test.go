package v2store_test

import (
	"context"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	v2 "github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// testTTL checks what the golden file cannot: the lease behind a ttl (one
// per key, granted with the ttl, holding the key), and that the reported
// ttl rounds the member's remaining seconds up.
func testTTL(t *testing.T, cc *grpc.ClientConn) {
	ctx := context.Background()
	const prefix = "/unit-ttl"
	s := v2.NewV3(cc, prefix)
	kv, lease := etcdrpc.NewKVClient(cc), etcdrpc.NewLeaseClient(cc)
	leaseOf := func(t *testing.T, key string) int64 {
		t.Helper()
		r, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte(prefix + key)})
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("v3 key %s: %v %v", prefix+key, r, err)
		}
		return r.Kvs[0].Lease
	}
	for _, c := range []struct {
		name   string
		key    string // v2 key written; the lease sits on v3 key prefix+leaseKey
		opts   v2.SetOptions
		leased string
		ttl    int64 // granted
	}{
		{"file", "/f", v2.SetOptions{Value: "v", TTL: ttlp(30)}, "/f", 30},
		{"dir marker", "/d", v2.SetOptions{Dir: true, TTL: ttlp(40)}, "/d/", 40},
		{"create", "/c", v2.SetOptions{Value: "v", TTL: ttlp(25), PrevExist: boolp(false)}, "/c", 25},
		{"ttl 0 gets the shortest lease", "/z", v2.SetOptions{Value: "v", TTL: ttlp(0)}, "/z", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev, _, err := s.Put(ctx, c.key, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			id := leaseOf(t, c.leased)
			if id == 0 {
				t.Fatalf("%s has no lease", c.leased)
			}
			r, err := lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id, Keys: true})
			if err != nil {
				t.Fatal(err)
			}
			// The member may raise a short lease to its minimum TTL.
			if r.GrantedTTL != c.ttl && !(c.ttl == 1 && r.GrantedTTL >= 1) {
				t.Errorf("lease granted %d s, want %d", r.GrantedTTL, c.ttl)
			}
			if len(r.Keys) != 1 || string(r.Keys[0]) != prefix+c.leased {
				t.Errorf("lease holds %q, want only %q", r.Keys, prefix+c.leased)
			}
			if c.ttl > 1 && ev.Node.TTL != c.ttl {
				t.Errorf("write reports ttl %d, want %d", ev.Node.TTL, c.ttl)
			}
		})
	}

	t.Run("one lease per key", func(t *testing.T) {
		if a, b := leaseOf(t, "/f"), leaseOf(t, "/c"); a == b {
			t.Errorf("/f and /c share lease %x", a)
		}
	})

	t.Run("get rounds up", func(t *testing.T) {
		ev, _, err := s.Get(ctx, "/f", v2.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: leaseOf(t, "/f")})
		if err != nil {
			t.Fatal(err)
		}
		// The member reports whole seconds left rounded down (read after
		// the get, so no more than then); v2 rounds up, capped at the ttl.
		if ev.Node.TTL <= r.TTL || ev.Node.TTL > r.GrantedTTL {
			t.Errorf("get reports ttl %d; member says %d s left of %d", ev.Node.TTL, r.TTL, r.GrantedTTL)
		}
	})

	t.Run("set without ttl drops the lease", func(t *testing.T) {
		ev, _, err := s.Put(ctx, "/f", v2.SetOptions{Value: "permanent"})
		if err != nil {
			t.Fatal(err)
		}
		if id := leaseOf(t, "/f"); id != 0 || ev.Node.TTL != 0 || ev.Node.Expiration != nil {
			t.Errorf("lease %x, ttl %d, expiration %v after a set without ttl", id, ev.Node.TTL, ev.Node.Expiration)
		}
		if ev.PrevNode == nil || ev.PrevNode.TTL == 0 {
			t.Errorf("prevNode %+v lost the old ttl", ev.PrevNode)
		}
	})

	t.Run("failed write revokes its lease", func(t *testing.T) {
		before, err := lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = s.Put(ctx, "/c", v2.SetOptions{Value: "again", TTL: ttlp(60), PrevExist: boolp(false)})
		if ve, ok := err.(*v2.Error); !ok || ve.Code != v2.EcodeNodeExist {
			t.Fatalf("create on existing: %v", err)
		}
		// The revoke is asynchronous: wait for the lease count to settle.
		waitfor.True(t, 20*time.Second, "the failed create's lease to be revoked", func() bool {
			after, err := lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
			return err == nil && len(after.Leases) <= len(before.Leases)
		})
	})
}
