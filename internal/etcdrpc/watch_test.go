package etcdrpc_test

import (
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestDeliveredRevision(t *testing.T) {
	hd := &pb.ResponseHeader{Revision: 5000}
	ev := func(rev int64) *mvccpb.Event { return &mvccpb.Event{Kv: &mvccpb.KeyValue{ModRevision: rev}} }
	for _, c := range []struct {
		name string
		resp *pb.WatchResponse
		want int64
	}{
		{"created", &pb.WatchResponse{Header: hd, Created: true}, 0},
		{"canceled", &pb.WatchResponse{Header: hd, Canceled: true}, 0},
		{"catch-up batch", &pb.WatchResponse{Header: hd, Events: []*mvccpb.Event{ev(11), ev(12), ev(12)}}, 12},
		{"progress notification", &pb.WatchResponse{Header: hd}, 5000},
		{"no header", &pb.WatchResponse{}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := etcdrpc.DeliveredRevision(c.resp); got != c.want {
				t.Fatalf("got %d, want %d", got, c.want)
			}
		})
	}
}
