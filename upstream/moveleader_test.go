package upstream

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// maintenanceMember is a fake member's Maintenance service: Status reports
// its id, the leader and a committed index; with auth on it answers only
// calls carrying the token "tok", as 3.5+ members answer only a user.
type maintenanceMember struct {
	pb.UnimplementedMaintenanceServer
	id, leader, raftIndex uint64
	auth                  bool

	mu      sync.Mutex
	movedTo uint64
}

func (m *maintenanceMember) authorized(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if m.auth && (len(md.Get(rpctypes.TokenFieldNameGRPC)) == 0 || md.Get(rpctypes.TokenFieldNameGRPC)[0] != "tok") {
		return rpctypes.ErrGRPCUserEmpty
	}
	return nil
}

func (m *maintenanceMember) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	if err := m.authorized(ctx); err != nil {
		return nil, err
	}
	return &pb.StatusResponse{Header: &pb.ResponseHeader{MemberId: m.id}, Leader: m.leader, RaftIndex: m.raftIndex}, nil
}

func (m *maintenanceMember) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := m.authorized(ctx); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.movedTo = r.TargetID
	m.mu.Unlock()
	return &pb.MoveLeaderResponse{}, nil
}

func startMaintenanceMember(t *testing.T, m *maintenanceMember) string {
	t.Helper()
	return etcdtest.ServeGRPC(t, func(srv *grpc.Server) {
		healthpb.RegisterHealthServer(srv, health.NewServer())
		pb.RegisterMaintenanceServer(srv, m)
	})
}

// tokenCreds is an identity whose token is "tok".
type tokenCreds struct{}

func (tokenCreds) Context(ctx context.Context) (context.Context, error) {
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, "tok"), nil
}
func (tokenCreds) Renew(context.Context, context.Context, error) {}

// TestMoveLeader: the probes learn the leader, as the pool's identity where
// a member requires a user; a leading member's leadership moves to the most
// up-to-date healthy follower (highest committed index), with that identity,
// and the call's times are reported; a follower moves nothing; without an
// identity, a member that requires a user leaves leadership where it is and
// the error says why.
func TestMoveLeader(t *testing.T) {
	for _, tc := range []struct {
		name        string
		auth        bool
		identity    bool
		leader      uint64 // of members 1, 2, 3 (the one asked is 1)
		wantMovedTo uint64
		wantError   string
	}{
		{name: "leader, auth off", leader: 1, wantMovedTo: 3},
		{name: "leader, auth on, --user", auth: true, identity: true, leader: 1, wantMovedTo: 3},
		{name: "leader, auth on, no --user", auth: true, leader: 1, wantError: "user name is empty"},
		{name: "follower", auth: true, identity: true, leader: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Member 3 is further ahead than member 2: it is the one to lead.
			members := []*maintenanceMember{
				{id: 1, leader: tc.leader, raftIndex: 20, auth: tc.auth},
				{id: 2, leader: tc.leader, raftIndex: 18, auth: tc.auth},
				{id: 3, leader: tc.leader, raftIndex: 19, auth: tc.auth},
			}
			var eps []*url.URL
			for _, m := range members {
				eps = append(eps, &url.URL{Scheme: "http", Host: startMaintenanceMember(t, m)})
			}
			pool, err := NewPool(Options{Endpoints: eps, DialTimeout: time.Second, HealthInterval: 50 * time.Millisecond,
				HealthTimeout: time.Second, Logger: zaptest.NewLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			if tc.identity {
				pool.SetIdentity(tokenCreds{})
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go pool.Run(ctx)
			waitfor.True(t, 20*time.Second, "every member healthy", func() bool {
				for _, ep := range pool.eps {
					if !ep.healthy.Load() {
						return false
					}
				}
				return true
			})
			// The probes learn the leader as the identity too; without
			// one, a member requiring a user tells them nothing.
			if !tc.auth || tc.identity {
				waitfor.True(t, 20*time.Second, "the leader learnt", func() bool { return pool.eps[1].leaderID.Load() == tc.leader })
			} else if id := pool.eps[1].leaderID.Load(); id != 0 {
				t.Fatalf("leader %d learnt without a user", id)
			}

			before := time.Now()
			mv, err := pool.MoveLeader(ctx, nil)
			members[0].mu.Lock()
			movedTo := members[0].movedTo
			members[0].mu.Unlock()
			if movedTo != tc.wantMovedTo {
				t.Fatalf("MoveLeader sent to %d, want %d (%+v, %v)", movedTo, tc.wantMovedTo, mv, err)
			}
			switch {
			case tc.wantError != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantError) || mv.To != 0 {
					t.Fatalf("got %+v, %v; want an error with %q", mv, err, tc.wantError)
				}
			case tc.wantMovedTo != 0:
				if err != nil || mv.To != 3 || mv.Started.Before(before) || mv.Ended.Before(mv.Started) {
					t.Fatalf("got %+v, %v; want leadership moved to 3 with the call's times", mv, err)
				}
			default:
				if err != nil || mv != (LeaderMove{}) {
					t.Fatalf("got %+v, %v; want nothing moved", mv, err)
				}
			}
		})
	}
}
