package upstream

import (
	"context"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestFailbackMovesAreSpread: failback moves wait a random time below the
// window (so that many clients do not reconnect in the same instant);
// planned drains move at once.
func TestFailbackMovesAreSpread(t *testing.T) {
	const window = 30 * time.Second
	p := &Pool{opts: Options{FailbackWindow: window}}
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := p.moveDelay(false)
		if d < 0 || d >= window {
			t.Fatalf("delay %v outside [0, %v)", d, window)
		}
		seen[d/time.Second] = true
	}
	if len(seen) < 25 {
		t.Fatalf("1000 delays fell into %d of the window's 30 seconds: not spread", len(seen))
	}
	if d := p.moveDelay(true); d != 0 {
		t.Fatalf("a planned drain waits %v", d)
	}
	if d := (&Pool{}).moveDelay(false); d != 0 {
		t.Fatalf("no window, yet a delay of %v", d)
	}
}

// TestDrainedMemberReturnsAfterRestart: a drained member stays out of
// rotation while it serves, and returns by itself once it was seen down and
// serves again (it was restarted); the other member takes the traffic
// meanwhile.
func TestDrainedMemberReturnsAfterRestart(t *testing.T) {
	first, second := startHealthMember(t), startHealthMember(t)
	p := testPool(t, first.addr, second.addr)
	p.opts.HealthInterval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		waitfor.Recv(t, done, 20*time.Second, "the pool to stop")
	}()
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	if left, err := p.Drain(dctx, nil); err != nil || left != (InFlight{}) {
		t.Fatalf("Drain: %+v %v", left, err)
	}
	ep, _ := p.endpointFor(nil)
	first.probed(t, 2)
	if p.Current().Host != second.addr || ep.drain.Load() != drainUp {
		t.Fatalf("a drained member that serves: current %s, drain state %d", p.Current(), ep.drain.Load())
	}
	first.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	first.probed(t, 2)
	if p.Current().Host != second.addr || ep.drain.Load() != drainSawDown {
		t.Fatalf("the drained member stopped: current %s, drain state %d", p.Current(), ep.drain.Load())
	}
	first.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	first.probed(t, 2)
	if p.Current().Host != first.addr || p.Draining(nil) {
		t.Fatalf("the drained member serves again: current %s, draining %v", p.Current(), p.Draining(nil))
	}
}

// healthMember answers the gRPC health service and tells each Check.
type healthMember struct {
	*health.Server
	addr   string
	checks chan struct{}
}

func (m *healthMember) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	select {
	case m.checks <- struct{}{}:
	default:
	}
	return m.Server.Check(ctx, req)
}

// probed waits for n Checks to arrive from now on. The pool probes in
// rounds: once the second one after a change arrives, the verdict of the
// first is in.
func (m *healthMember) probed(t *testing.T, n int) {
	t.Helper()
	for {
		select {
		case <-m.checks: // from before
			continue
		default:
		}
		break
	}
	for range n {
		select {
		case <-m.checks:
		case <-time.After(20 * time.Second): // only ends a hung test
			t.Fatal("the pool stopped probing the member")
		}
	}
}

// startHealthMember is a member that answers only the gRPC health service.
func startHealthMember(t *testing.T) *healthMember {
	t.Helper()
	m := &healthMember{Server: health.NewServer(), checks: make(chan struct{}, 1)}
	m.addr = etcdtest.ServeGRPC(t, func(srv *grpc.Server) { healthpb.RegisterHealthServer(srv, m) })
	return m
}
