package v2auth

import (
	"context"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// busyMember is a fakeMember whose Authenticate waits for gate, so that
// requests pile up behind it as they do behind bcrypt on a busy member; and
// which refuses the next lagRanges ranges after an Authenticate as invalid,
// as a member that has not applied that Authenticate yet does.
type busyMember struct {
	*fakeMember
	gate      chan struct{}
	auths     atomic.Int64
	ranges    atomic.Int64
	lagRanges atomic.Int64
}

func (b *busyMember) ClientConn() grpc.ClientConnInterface { return b }

func (b *busyMember) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	switch method {
	case "/etcdserverpb.Auth/Authenticate":
		b.auths.Add(1)
		if b.gate != nil {
			<-b.gate
		}
	case "/etcdserverpb.KV/Range":
		b.ranges.Add(1)
		if b.lagRanges.Add(-1) >= 0 {
			return wire(rpctypes.ErrGRPCInvalidAuthToken)
		}
	}
	return b.fakeMember.Invoke(ctx, method, args, reply, opts...)
}

func newBusyMember() *busyMember {
	return &busyMember{fakeMember: &fakeMember{calls: map[string]int{},
		perms: []*authpb.Permission{{PermType: authpb.READWRITE, Key: []byte("/app/"), RangeEnd: []byte("/app0")}}}}
}

// aliceContext is a request context of alice's with her cached token.
func aliceContext(tokens *Tokens) (context.Context, error) {
	r := httptest.NewRequest("GET", "/v2/keys/app/x", nil)
	r.SetBasicAuth("alice", "pw")
	ctx, _, err := tokens.Context(context.Background(), r)
	return ctx, err
}

func rangeWith(ctx context.Context, up Upstream) error {
	_, err := etcdrpc.NewKVClient(up.ClientConn()).Range(ctx, &pb.RangeRequest{Key: []byte("/app/x")})
	return err
}

func rangeAsAlice(tokens *Tokens, up Upstream) error {
	ctx, err := aliceContext(tokens)
	if err != nil {
		return err
	}
	return rangeWith(ctx, up)
}

// expire makes the member forget every token it issued.
func (b *busyMember) expire() {
	b.mu.Lock()
	b.current = "expired"
	b.mu.Unlock()
	b.auths.Store(0)
}

// TestExpiredTokenRenewedOnceForAllRequests: the requests that find a
// user's token expired share one Authenticate, as every client of a user
// does at once after nobody used the token for the TTL. Each sending its
// own cost the member one bcrypt per request, and the new tokens replaced
// each other (a soak on a busy machine timed out behind them).
func TestExpiredTokenRenewedOnceForAllRequests(t *testing.T) {
	b := newBusyMember()
	tokens := NewTokens(b, "", "", 8)
	up := tokens.Upstream(b)
	if err := rangeAsAlice(tokens, up); err != nil {
		t.Fatal(err)
	}
	// n requests in flight with the token when it expires.
	const n = 20
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctx, err := aliceContext(tokens)
		if err != nil {
			t.Fatal(err)
		}
		ctxs[i] = ctx
	}
	b.expire()
	b.gate = make(chan struct{})
	b.ranges.Store(0)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, ctx := range ctxs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- rangeWith(ctx, up)
		}()
	}
	// Every request was refused before the Authenticate is let through.
	waitfor.True(t, 10*time.Second, "every request refused", func() bool { return b.ranges.Load() >= n })
	close(b.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a request after the expiry: %v", err)
		}
	}
	if got := b.auths.Load(); got != 1 {
		t.Fatalf("%d Authenticate calls for %d requests with one expired token, want 1", got, n)
	}
}
