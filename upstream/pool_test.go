package upstream

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// silentHealth is a member whose health check never answers.
type silentHealth struct {
	healthpb.UnimplementedHealthServer
	called chan struct{}
}

func (s *silentHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	select {
	case s.called <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestProbeVerdicts: a probe that times out marks the member unhealthy
// with a warning; a probe cut short because the pool is stopping is no
// verdict on the member and logs nothing.
func TestProbeVerdicts(t *testing.T) {
	for _, c := range []struct {
		name          string
		healthTimeout time.Duration
		stopDuring    bool // cancel Run's context while the probe waits
		wantWarning   bool
	}{
		{"member does not answer", 200 * time.Millisecond, false, true},
		{"pool stops mid-probe", time.Minute, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			member := &silentHealth{called: make(chan struct{}, 1)}
			addr := etcdtest.ServeGRPC(t, func(srv *grpc.Server) { healthpb.RegisterHealthServer(srv, member) })

			core, logs := observer.New(zap.InfoLevel)
			p, err := NewPool(Options{Endpoints: []*url.URL{{Scheme: "http", Host: addr}},
				DialTimeout: time.Second, HealthInterval: time.Hour, HealthTimeout: c.healthTimeout, Logger: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { p.Run(ctx); close(done) }()
			select {
			case <-member.called:
			case <-time.After(10 * time.Second):
				t.Fatal("the pool never probed the member")
			}
			warned := func() bool { return logs.FilterMessage("upstream member is unhealthy").Len() > 0 }
			if !c.stopDuring {
				// The probe times out; its round ends with the verdict.
				waitfor.True(t, 20*time.Second, "the unhealthy warning", warned)
			}
			cancel()
			waitfor.Recv(t, done, 20*time.Second, "the pool to stop")
			p.Close()
			if warned() != c.wantWarning {
				t.Fatalf("unhealthy warning logged: %v, want %v (logs: %v)", warned(), c.wantWarning, logs.All())
			}
		})
	}
}
