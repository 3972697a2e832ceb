package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/waitfor"
	"github.com/etcdshim/etcdshim/upstream"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// waitFor waits for cond (no timing assertion: the deadline only ends a
// test that would otherwise hang).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitfor.True(t, hangGuard, what, cond)
}

// hangGuard bounds every wait of these tests.
const hangGuard = 20 * time.Second

func tunnelsOn(p *upstream.Pool, addr string) int { return p.TunnelCounts()["http://"+addr] }

// TestFailbackMovesTunnelsGracefully: a client tunnelled to the fallback
// while the preferred member was down is moved back once it serves again;
// the unary call in flight finishes, the long stream ends with Unavailable,
// and the next call goes to the preferred member.
func TestFailbackMovesTunnelsGracefully(t *testing.T) {
	first, second := startFakeMember(t), startFakeMember(t)
	first.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	shim := startTestShim(t, first.addr, second.addr)
	waitFor(t, "failover to the second member", func() bool { return shim.pool.Current().Host == second.addr })

	hc := healthpb.NewHealthClient(dialShim(t, shim.addr))
	second.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	// Bounded so that a stream the shim never ends fails the test, not hangs it.
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	if n := tunnelsOn(shim.pool, second.addr); n != 1 {
		t.Fatalf("tunnels on the fallback during the outage: %d, want 1", n)
	}
	slow := make(chan error, 1)
	go func() {
		_, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "slow"})
		slow <- err
	}()
	waitfor.Recv(t, second.started, hangGuard, "the slow call to reach the fallback")

	first.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, "the preferred member to be current again", func() bool { return shim.pool.Current().Host == first.addr })
	// The move waits for the unary call: the tunnel stays on the fallback.
	if n := tunnelsOn(shim.pool, second.addr); n != 1 {
		t.Fatalf("tunnels on the fallback while a unary call is in flight there: %d, want 1", n)
	}
	select {
	case err := <-slow:
		t.Fatalf("the unary call ended before it was released: %v", err)
	default:
	}
	close(second.release)
	if err := waitfor.Recv(t, slow, hangGuard, "the released unary call"); err != nil {
		t.Fatalf("a unary call in flight during failback failed: %v", err)
	}
	_, err = w.Recv()
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "moving to member") {
		t.Fatalf("the long stream ended with %v, want Unavailable from the shim's move", err)
	}
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a call after the move: %v", err)
	}
	waitFor(t, "the tunnel to leave the fallback", func() bool { return tunnelsOn(shim.pool, second.addr) == 0 })
	if n := tunnelsOn(shim.pool, first.addr); n != 1 {
		t.Fatalf("tunnels on the preferred member after failback: %d, want 1", n)
	}
}

// TestDrainMovesEverythingAndReturns: Drain moves the tunnel off the
// preferred member and answers once nothing is in flight there; the member
// returns to rotation by itself after it went down and serves again.
func TestDrainMovesEverythingAndReturns(t *testing.T) {
	first, second := startFakeMember(t), startFakeMember(t)
	shim := startTestShim(t, first.addr, second.addr)
	hc := healthpb.NewHealthClient(dialShim(t, shim.addr))
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if n := tunnelsOn(shim.pool, first.addr); n != 1 {
		t.Fatalf("tunnels on the preferred member: %d", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	left, err := shim.pool.Drain(ctx, nil)
	if err != nil || left.Tunnels != 0 || left.Calls != 0 {
		t.Fatalf("Drain: %+v %v", left, err)
	}
	if shim.pool.Current().Host != second.addr {
		t.Fatalf("current after drain: %s", shim.pool.Current())
	}
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a call after the drain: %v", err)
	}
	if n := tunnelsOn(shim.pool, second.addr); n != 1 {
		t.Fatalf("tunnels on the other member after drain: %d, want 1", n)
	}
	// Still serving: the drain holds. Probes are rounds: once a second one
	// asks, the first one's verdict (serving) is in, and was not taken for
	// a return.
	probed := first.checks()
	waitFor(t, "two probes of the drained member", func() bool { return first.checks() >= probed+2 })
	if !shim.pool.Draining(nil) || shim.pool.Current().Host != second.addr {
		t.Fatal("a drained member that never stopped returned to rotation")
	}
	// It stops and comes back (restarted): traffic returns.
	probed = first.checks()
	first.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, "two probes of the stopped member", func() bool { return first.checks() >= probed+2 })
	first.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, "the member to return", func() bool { return !shim.pool.Draining(nil) && shim.pool.Current().Host == first.addr })
	waitFor(t, "the tunnel to fail back", func() bool {
		_, _ = hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return tunnelsOn(shim.pool, first.addr) == 1 && tunnelsOn(shim.pool, second.addr) == 0
	})
}
