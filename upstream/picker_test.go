package upstream

import (
	"context"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kvMember is a fake member's KV service: it counts calls and answers with
// the errors a test sets.
type kvMember struct {
	pb.UnimplementedKVServer
	srv         *grpc.Server
	ln          net.Listener
	puts        atomic.Int32
	ranges      atomic.Int32
	rangeErr    error         // answered to every Range while set
	putBlock    chan struct{} // a Put waits for it (nil: answers at once)
	putArrived  chan struct{}
	rangeErrCnt int32 // how many Ranges get rangeErr
}

func (m *kvMember) Put(ctx context.Context, _ *pb.PutRequest) (*pb.PutResponse, error) {
	m.puts.Add(1)
	if m.putBlock != nil {
		close(m.putArrived)
		select {
		case <-m.putBlock:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 1}}, nil
}

func (m *kvMember) Range(context.Context, *pb.RangeRequest) (*pb.RangeResponse, error) {
	if n := m.ranges.Add(1); m.rangeErr != nil && n <= m.rangeErrCnt {
		return nil, m.rangeErr
	}
	return &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 1}}, nil
}

func startKVMember(t *testing.T) *kvMember {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &kvMember{srv: grpc.NewServer(), ln: ln}
	pb.RegisterKVServer(m.srv, m)
	go func() { _ = m.srv.Serve(ln) }()
	t.Cleanup(m.srv.Stop)
	return m
}

func testPool(t *testing.T, addrs ...string) *Pool {
	t.Helper()
	var eps []*url.URL
	for _, a := range addrs {
		eps = append(eps, &url.URL{Scheme: "http", Host: a})
	}
	p, err := NewPool(Options{Endpoints: eps, DialTimeout: time.Second, HealthInterval: time.Second,
		HealthTimeout: time.Second, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestPickerWriteNeverSentGoesToNextMember(t *testing.T) {
	first, second := startKVMember(t), startKVMember(t)
	p := testPool(t, first.ln.Addr().String(), second.ln.Addr().String())
	first.srv.Stop() // refuses connections: the Put cannot leave the shim
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := etcdrpc.NewKVClient(p.ClientConn()).Put(ctx, &pb.PutRequest{Key: []byte("k")}); err != nil {
		t.Fatalf("a write that never reached a member was not retried: %v", err)
	}
	if got := second.puts.Load(); got != 1 {
		t.Fatalf("second member got %d puts, want 1", got)
	}
}

func TestPickerWriteInFlightIsNotRetried(t *testing.T) {
	first, second := startKVMember(t), startKVMember(t)
	first.putBlock, first.putArrived = make(chan struct{}), make(chan struct{})
	p := testPool(t, first.ln.Addr().String(), second.ln.Addr().String())
	go func() {
		<-first.putArrived
		first.srv.Stop() // the member dies with the write in flight
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := etcdrpc.NewKVClient(p.ClientConn()).Put(ctx, &pb.PutRequest{Key: []byte("k")})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
	if got := second.puts.Load(); got != 0 {
		t.Fatalf("a write that may have applied was sent again (%d puts on the second member)", got)
	}
}

func TestPickerReadRetriedThroughLeaderChange(t *testing.T) {
	for _, e := range []error{rpctypes.ErrGRPCLeaderChanged, rpctypes.ErrGRPCNoLeader, rpctypes.ErrGRPCTimeout} {
		t.Run(status.Convert(e).Message(), func(t *testing.T) {
			first := startKVMember(t)
			first.rangeErr, first.rangeErrCnt = e, 2
			p := testPool(t, first.ln.Addr().String())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := etcdrpc.NewKVClient(p.ClientConn()).Range(ctx, &pb.RangeRequest{Key: []byte("k")}); err != nil {
				t.Fatalf("read not retried: %v", err)
			}
			if got := first.ranges.Load(); got != 3 {
				t.Fatalf("%d ranges, want 3", got)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	refused := status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp: connect: connection refused\"")
	eof := status.Error(codes.Unavailable, "error reading from server: EOF")
	goaway := status.Error(codes.Unavailable, "closing transport due to: connection error: desc = \"error reading from server: EOF\", received prior goaway: code: NO_ERROR")
	tests := []struct {
		name   string
		method string
		err    error
		sent   bool
		want   verdict
	}{
		{"read, connection broke", "/etcdserverpb.KV/Range", eof, true, retryMemberDown},
		{"write, connection broke after sending", "/etcdserverpb.KV/Put", eof, true, noRetry},
		{"write, in flight when the member went away after GOAWAY", "/etcdserverpb.KV/Txn", goaway, true, noRetry},
		{"write, never sent", "/etcdserverpb.KV/Txn", refused, false, retryMemberDown},
		{"write, never sent, EOF from an earlier attempt's transport", "/etcdserverpb.KV/Put", eof, false, retryMemberDown},
		{"read, leader changed", "/etcdserverpb.KV/Range", status.Error(codes.Unavailable, "etcdserver: leader changed"), true, retryCluster},
		{"read, no leader", "/etcdserverpb.KV/Range", status.Error(codes.Unavailable, "etcdserver: no leader"), true, retryCluster},
		{"read, read index timed out", "/etcdserverpb.KV/Range", status.Error(codes.Unavailable, "etcdserver: request timed out"), true, retryCluster},
		{"write, timed out after proposing", "/etcdserverpb.KV/Txn", status.Error(codes.Unavailable, "etcdserver: request timed out, possibly due to previous leader failure"), true, noRetry},
		{"write, server stopped", "/etcdserverpb.KV/Txn", status.Error(codes.Unavailable, "etcdserver: server stopped"), true, noRetry},
		{"write, no leader (refused before proposing)", "/etcdserverpb.Lease/LeaseGrant", status.Error(codes.Unavailable, "etcdserver: no leader"), true, retryCluster},
		{"write, too many requests", "/etcdserverpb.KV/Put", status.Error(codes.ResourceExhausted, "etcdserver: too many requests"), true, retryCluster},
		{"write, proposal dropped by raft (leader transfer)", "/etcdserverpb.KV/Txn", status.Error(codes.Unknown, "raft proposal dropped"), true, retryCluster},
		{"not found", "/etcdserverpb.KV/Range", status.Error(codes.NotFound, "x"), true, noRetry},
		{"write, deadline", "/etcdserverpb.KV/Put", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), false, noRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.method, tt.err, tt.sent); got != tt.want {
				t.Fatalf("classify = %v, want %v", got, tt.want)
			}
		})
	}
}
