package etcdrpc

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc"
)

// TestClientsAgainstEtcd calls unary and streaming methods of every service
// through the interface-based clients against an in-process etcd.
func TestClientsAgainstEtcd(t *testing.T) {
	_, conn := etcdtest.Start(t)
	var cc grpc.ClientConnInterface = conn
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	kv := NewKVClient(cc)
	if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	rr, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("a")})
	if err != nil || len(rr.Kvs) != 1 || string(rr.Kvs[0].Value) != "1" {
		t.Fatalf("range: %v %v", rr, err)
	}

	w, err := NewWatchClient(cc).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("a")}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || !r.Created {
		t.Fatalf("watch create: %v %v", r, err)
	}
	_, _ = kv.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("2")})
	if r, err := w.Recv(); err != nil || len(r.Events) != 1 {
		t.Fatalf("watch event: %v %v", r, err)
	}

	lc := NewLeaseClient(cc)
	lg, err := lc.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 30})
	if err != nil {
		t.Fatal(err)
	}
	ka, err := lc.LeaseKeepAlive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ka.Send(&pb.LeaseKeepAliveRequest{ID: lg.ID})
	if r, err := ka.Recv(); err != nil || r.ID != lg.ID {
		t.Fatalf("keepalive: %v %v", r, err)
	}

	if ml, err := NewClusterClient(cc).MemberList(ctx, &pb.MemberListRequest{}); err != nil || len(ml.Members) != 1 {
		t.Fatalf("member list: %v %v", ml, err)
	}
	snap, err := NewMaintenanceClient(cc).Snapshot(ctx, &pb.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		r, err := snap.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n += len(r.Blob)
	}
	if n == 0 {
		t.Fatal("empty snapshot")
	}
	if _, err := NewAuthClient(cc).AuthStatus(ctx, &pb.AuthStatusRequest{}); err != nil {
		t.Fatal(err)
	}
	lr, err := NewLockClient(cc).Lock(ctx, &v3lockpb.LockRequest{Name: []byte("l"), Lease: lg.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewLockClient(cc).Unlock(ctx, &v3lockpb.UnlockRequest{Key: lr.Key}); err != nil {
		t.Fatal(err)
	}
	el := NewElectionClient(cc)
	if _, err := el.Campaign(ctx, &v3electionpb.CampaignRequest{Name: []byte("e"), Lease: lg.ID, Value: []byte("me")}); err != nil {
		t.Fatal(err)
	}
	obs, err := el.Observe(ctx, &v3electionpb.LeaderRequest{Name: []byte("e")})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := obs.Recv(); err != nil || string(r.Kv.Value) != "me" {
		t.Fatalf("observe: %v %v", r, err)
	}
}
