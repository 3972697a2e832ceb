package upstream

import (
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestWritesGoToTheLeader(t *testing.T) {
	p, err := NewPool(Options{Endpoints: []*url.URL{{Scheme: "http", Host: "127.0.0.1:1"}, {Scheme: "http", Host: "127.0.0.1:2"}, {Scheme: "http", Host: "127.0.0.1:3"}},
		DialTimeout: time.Second, HealthInterval: time.Second, HealthTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i, ep := range p.eps {
		ep.memberID.Store(uint64(10 + i))
		ep.leaderID.Store(12)
	}
	own, leader := p.eps[0], p.eps[2]
	for _, tc := range []struct {
		name   string
		method string
		setup  func()
		want   *endpoint
	}{
		{"a put goes to the leader", "/etcdserverpb.KV/Put", func() {}, leader},
		{"a txn goes to the leader", "/etcdserverpb.KV/Txn", func() {}, leader},
		{"a lease grant goes to the leader", "/etcdserverpb.Lease/LeaseGrant", func() {}, leader},
		{"a range stays on the own member", "/etcdserverpb.KV/Range", func() {}, own},
		{"a watch-free status stays", "/etcdserverpb.Maintenance/Status", func() {}, own},
		{"an unhealthy leader is skipped", "/etcdserverpb.KV/Put", func() { leader.healthy.Store(false) }, own},
		{"a drained leader is skipped", "/etcdserverpb.KV/Put", func() { leader.healthy.Store(true); leader.drain.Store(drainUp) }, own},
		{"an unknown leader: the own member", "/etcdserverpb.KV/Put", func() { leader.drain.Store(drainOff); own.leaderID.Store(0) }, own},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			if got := p.firstFor(tc.method); got != tc.want {
				t.Fatalf("%s went to %s, want %s", tc.method, got.url, tc.want.url)
			}
		})
	}
	if !proposalDropped(status.Error(codes.Unknown, "raft proposal dropped")) || proposalDropped(status.Error(codes.Unavailable, "etcdserver: request timed out")) {
		t.Fatal("proposalDropped")
	}
}
