package v2auth

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/waitfor"

	"google.golang.org/grpc"
)

// staleOnArrival is a busyMember whose next dead Authenticates issue a
// token it has already dropped by the time the shim uses it, as a member
// does when more than --auth-token-ttl passes between its applying the
// Authenticate and the call that carries the token (a machine so loaded
// that every probe of every member timed out).
type staleOnArrival struct {
	*busyMember
	dead atomic.Int64
}

func (s *staleOnArrival) ClientConn() grpc.ClientConnInterface { return s }

func (s *staleOnArrival) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	err := s.busyMember.Invoke(ctx, method, args, reply, opts...)
	if method == "/etcdserverpb.Auth/Authenticate" && err == nil && s.dead.Add(-1) >= 0 {
		s.mu.Lock()
		s.current = "dropped"
		s.mu.Unlock()
	}
	return err
}

// TestFreshTokenRefusedAgain: issue 19's 30-minute soak answered a v2 write
// and a v2 quorum get 110 at a moment when every shim's probes of every
// member timed out: their token expired, the renewed one was refused too,
// and the connection tried that one token for 300 ms only. A refused token
// is a definite refusal (nothing applied), so the call is tried again with
// pauses that grow, and from the fourth refusal on with a new token: a
// renewed token the member dropped before its first use (the TTL passed
// during the stall) is replaced, and a member that lags longer than 300 ms
// behind the Authenticate is waited for.
func TestFreshTokenRefusedAgain(t *testing.T) {
	t.Run("the renewed token dropped before its first use", func(t *testing.T) {
		m := &staleOnArrival{busyMember: newBusyMember()}
		tokens := NewTokens(m, "", "", 8)
		up := tokens.Upstream(m)
		if err := rangeAsAlice(tokens, up); err != nil {
			t.Fatal(err)
		}
		m.expire()
		m.dead.Store(1)
		if err := rangeAsAlice(tokens, up); err != nil {
			t.Fatalf("with the renewed token dropped before its first use: %v", err)
		}
		if got := m.auths.Load(); got != 2 {
			t.Fatalf("%d Authenticate calls, want 2 (the dropped token replaced once)", got)
		}
	})
	for _, lag := range []struct {
		calls int64
		auths int64 // Authenticate calls the renewal makes; 0: not checked
	}{
		{calls: 2, auths: 1}, // fewer refusals than a token is tried: it is kept
		{calls: 5},
	} {
		t.Run(fmt.Sprintf("a member %d calls behind the Authenticate", lag.calls), func(t *testing.T) {
			m := newBusyMember()
			tokens := NewTokens(m, "", "", 8)
			up := tokens.Upstream(m)
			if err := rangeAsAlice(tokens, up); err != nil {
				t.Fatal(err)
			}
			m.expire()
			m.gate = make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- rangeAsAlice(tokens, up) }()
			waitfor.True(t, 10*time.Second, "the renewal", func() bool { return m.auths.Load() > 0 })
			// The expired token's refusal (by the fake itself), then
			// lag.calls refusals of whatever token comes next.
			m.lagRanges.Store(lag.calls)
			close(m.gate)
			if err := waitfor.Recv(t, done, 30*time.Second, "the request after the renewal"); err != nil {
				t.Fatalf("with a member %d calls behind: %v", lag.calls, err)
			}
			if got := m.auths.Load(); lag.auths != 0 && got != lag.auths {
				t.Fatalf("%d Authenticate calls, want %d (the new token is kept)", got, lag.auths)
			}
		})
	}
}
