package upstream

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// tokenMember is a fake member that reports member id and leader in its
// Status and answers Put and Range only to the simple tokens it knows, as
// etcd refuses a token it has not assigned (or has dropped) before
// proposing anything; refuse, when set, is its answer to every Put instead.
type tokenMember struct {
	pb.UnimplementedKVServer
	pb.UnimplementedMaintenanceServer
	id, leader uint64
	known      map[string]bool
	refuse     error
	puts       atomic.Int32
	ranges     atomic.Int32
}

func (m *tokenMember) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(rpctypes.TokenFieldNameGRPC); len(v) == 0 || !m.known[v[0]] {
		return rpctypes.ErrGRPCInvalidAuthToken
	}
	return nil
}

func (m *tokenMember) Put(ctx context.Context, _ *pb.PutRequest) (*pb.PutResponse, error) {
	m.puts.Add(1)
	if m.refuse != nil {
		return nil, m.refuse
	}
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return &pb.PutResponse{Header: &pb.ResponseHeader{MemberId: m.id, Revision: 2}}, nil
}

func (m *tokenMember) Range(ctx context.Context, _ *pb.RangeRequest) (*pb.RangeResponse, error) {
	m.ranges.Add(1)
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return &pb.RangeResponse{Header: &pb.ResponseHeader{MemberId: m.id, Revision: 2}}, nil
}

func (m *tokenMember) Status(context.Context, *pb.StatusRequest) (*pb.StatusResponse, error) {
	return &pb.StatusResponse{Header: &pb.ResponseHeader{MemberId: m.id}, Leader: m.leader}, nil
}

func startTokenMember(t *testing.T, m *tokenMember) string {
	t.Helper()
	return etcdtest.ServeGRPC(t, func(srv *grpc.Server) {
		healthpb.RegisterHealthServer(srv, health.NewServer())
		pb.RegisterKVServer(srv, m)
		pb.RegisterMaintenanceServer(srv, m)
	})
}

// TestWriteToLeaderRefusedForToken: issue 19's soak, a /v3beta put
// repeated after authenticating again was refused as "invalid auth token".
// The shim sends writes to the leader, but the client authenticated through
// the shim's current member, which had assigned the token; the leader had
// not (its Authenticate not applied yet, or the token dropped after the TTL
// while the current member caught up after its restart). Such a refusal
// comes before anything is proposed: the write goes to the current member,
// which knows the token. Other refusals, and a token the current member
// refuses too, are the client's answer; nothing is sent a third time.
func TestWriteToLeaderRefusedForToken(t *testing.T) {
	for _, tc := range []struct {
		name                string
		ownKnows            bool
		leaderRefuses       error
		read                bool
		wantErr             error
		ownPuts, leaderPuts int32
		ownRanges           int32
	}{
		{name: "the leader does not know the token: the current member serves the write", ownKnows: true,
			ownPuts: 1, leaderPuts: 1},
		{name: "the current member does not know it either: the client's answer", ownKnows: false,
			wantErr: rpctypes.ErrGRPCInvalidAuthToken, ownPuts: 1, leaderPuts: 1},
		{name: "the leader refuses the user's rights: not sent again", ownKnows: true, leaderRefuses: rpctypes.ErrGRPCPermissionDenied,
			wantErr: rpctypes.ErrGRPCPermissionDenied, ownPuts: 0, leaderPuts: 1},
		{name: "the leader says the auth store changed: not sent again", ownKnows: true, leaderRefuses: rpctypes.ErrGRPCAuthOldRevision,
			wantErr: rpctypes.ErrGRPCAuthOldRevision, ownPuts: 0, leaderPuts: 1},
		{name: "a read the current member refuses stays refused", ownKnows: false, read: true,
			wantErr: rpctypes.ErrGRPCInvalidAuthToken, ownRanges: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			own := &tokenMember{id: 10, leader: 12, known: map[string]bool{"fresh": tc.ownKnows}}
			leader := &tokenMember{id: 12, leader: 12, known: map[string]bool{}, refuse: tc.leaderRefuses}
			p := testPool(t, startTokenMember(t, own), startTokenMember(t, leader))
			rctx, stop := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- p.Run(rctx) }()
			defer func() { stop(); waitfor.Recv(t, ran, 10*time.Second, "the pool to stop") }()
			waitfor.True(t, 10*time.Second, "the pool to learn the leader", func() bool {
				return p.firstFor("/etcdserverpb.KV/Put") == p.eps[1] && p.current() == p.eps[0]
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, "fresh")
			kv := etcdrpc.NewKVClient(p.ClientConn())
			var err error
			if tc.read {
				_, err = kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
			} else {
				_, err = kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")})
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("err = %v, want success", err)
			case tc.wantErr != nil && !etcderr.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if o, l := own.puts.Load(), leader.puts.Load(); o != tc.ownPuts || l != tc.leaderPuts {
				t.Fatalf("puts: current member %d, leader %d; want %d, %d", o, l, tc.ownPuts, tc.leaderPuts)
			}
			if o, l := own.ranges.Load(), leader.ranges.Load(); o != tc.ownRanges || l != 0 {
				t.Fatalf("ranges: current member %d, leader %d; want %d, 0", o, l, tc.ownRanges)
			}
		})
	}
}
