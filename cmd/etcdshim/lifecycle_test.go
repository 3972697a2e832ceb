package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/internal/freeport"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// recorder notes the order in which actors return.
type recorder struct {
	mu       sync.Mutex
	returned []string
}

func (r *recorder) note(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.returned = append(r.returned, name)
}

func (r *recorder) order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.returned)
}

// waiting is an actor that runs until its context ends; it notes when it
// is told to stop and when it returns.
func waiting(name string, rec *recorder, started *sync.WaitGroup) actor {
	started.Add(1)
	return actor{name: name, run: func(ctx context.Context) error {
		started.Done()
		<-ctx.Done()
		rec.note(name + " told to stop")
		rec.note(name + " returned")
		return nil
	}}
}

// TestLifecycleStopsAllInReverseOrder: when one actor fails after all have
// started, every other one is stopped, newest first and each only after the
// one before it returned, and run reports the failure.
func TestLifecycleStopsAllInReverseOrder(t *testing.T) {
	rec := &recorder{}
	var started sync.WaitGroup
	boom := errors.New("boom")
	lc := &lifecycle{log: zap.NewNop()}
	lc.add(waiting("pool", rec, &started), waiting("v2 watch hub", rec, &started))
	started.Add(1)
	lc.add(actor{name: "failing", run: func(context.Context) error {
		started.Done()
		started.Wait() // fails once every actor runs
		rec.note("failing returned")
		return boom
	}}, waiting("front", rec, &started))
	err := lc.run()
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "failing: ") {
		t.Fatalf("run returned %v, want the failing actor's error", err)
	}
	want := []string{"failing returned", "front told to stop", "front returned",
		"v2 watch hub told to stop", "v2 watch hub returned", "pool told to stop", "pool returned"}
	if got := rec.order(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// TestLifecycleAbortReleasesNewestFirst: a failed start runs every actor
// added so far with a context that has already ended, newest first.
func TestLifecycleAbortReleasesNewestFirst(t *testing.T) {
	rec := &recorder{}
	lc := &lifecycle{log: zap.NewNop()}
	for _, name := range []string{"embedded etcd", "upstream pool", "admin listener"} {
		lc.add(actor{name: name, run: func(ctx context.Context) error {
			if ctx.Err() == nil {
				t.Errorf("%s ran with a live context on a failed start", name)
			}
			rec.note(name)
			return nil
		}})
	}
	bind := errors.New("listening on http://127.0.0.1:1: address already in use")
	if err := lc.abort(bind); err != bind {
		t.Fatalf("abort returned %v, want the start's error", err)
	}
	if got, want := rec.order(), []string{"admin listener", "upstream pool", "embedded etcd"}; !slices.Equal(got, want) {
		t.Fatalf("released in the order %v, want %v", got, want)
	}
}

// goroutines are the IDs of the goroutines running now.
func goroutines() map[string]bool {
	ids := map[string]bool{}
	for _, g := range stacks() {
		ids[goroutineID(g)] = true
	}
	return ids
}

func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// goroutineID is N of a stack's "goroutine N [state]:" header.
func goroutineID(stack string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(stack, "goroutine "), " ")
	return id
}

// waitForBaseline waits until every goroutine started since base has
// ended, and fails the test with the stacks of those still running when
// the wait ends (the deadline only ends a hung test). The goroutine os/signal
// starts once per process for its first Notify is not the shim's.
func waitForBaseline(t *testing.T, base map[string]bool) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		left = left[:0]
		for _, g := range stacks() {
			if !base[goroutineID(g)] && !strings.Contains(g, "os/signal.signal_recv") && !strings.Contains(g, "os/signal.loop") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
	}
	t.Fatalf("%d goroutines still running after the shim returned:\n\n%s", len(left), strings.Join(left, "\n\n"))
}

// startMember is a stand-in for an etcd member: the gRPC health service
// only, which is what the pool probes.
func startMember(t *testing.T) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus("watched", healthpb.HealthCheckResponse_SERVING)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return ln.Addr().String(), func() {
		srv.Stop()
		<-done
	}
}

func loopbackURL(t *testing.T) string {
	t.Helper()
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// testConfig is the shim's default configuration on free loopback ports
// in front of member, with the admin listener on.
func testConfig(t *testing.T, member string) config.Config {
	cfg := config.Default()
	cfg.Endpoints = []string{"http://" + member}
	cfg.ListenClientURLs = []string{loopbackURL(t)}
	cfg.ListenMetricsURLs = []string{loopbackURL(t)}
	cfg.ListenAdminURL = loopbackURL(t)
	cfg.HealthInterval = 100 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.GCHeadroomBytes = 0
	return cfg
}

// TestFailedStartLeavesNothingRunning: when a listen address is taken, run
// fails with the address in its error, every listener it had bound is free
// again and no goroutine of the shim is left: not the pool's, not the v2
// follower's or read cache's, not a listener's.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	member, stopMember := startMember(t)
	defer stopMember()
	for _, tc := range []struct {
		name string
		busy func(*config.Config) *string
	}{
		// Taken before anything was bound.
		{"admin listener", func(c *config.Config) *string { return &c.ListenAdminURL }},
		// Taken once the admin listener and the client listeners are bound.
		{"metrics listener", func(c *config.Config) *string { return &c.ListenMetricsURLs[0] }},
		// Taken once the admin listener is bound.
		{"client listener", func(c *config.Config) *string { return &c.ListenClientURLs[0] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, member)
			taken := tc.busy(&cfg)
			busy, err := net.Listen("tcp", strings.TrimPrefix(*taken, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()

			base := goroutines()
			err = run(context.Background(), cfg, zap.NewNop())
			if err == nil || !strings.Contains(err.Error(), "listening on "+*taken) || !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("run: %v, want the taken address %s", err, *taken)
			}
			waitForBaseline(t, base)
			for _, u := range append(append([]string{cfg.ListenAdminURL}, cfg.ListenClientURLs...), cfg.ListenMetricsURLs...) {
				if u == *taken {
					continue
				}
				ln, err := net.Listen("tcp", strings.TrimPrefix(u, "http://"))
				if err != nil {
					t.Fatalf("%s is still bound after the failed start: %v", u, err)
				}
				ln.Close()
			}
		})
	}
}

// TestSIGTERMStopsAllInOrder: SIGTERM stops the front first (it stops
// accepting and ends a relayed gRPC stream with Unavailable, the drain),
// then the admin listener, the v2 read cache and the follower that feeds
// it and the watch hub, and the upstream pool last, each once the one before has returned; run returns
// nil and nothing of the shim keeps running.
func TestSIGTERMStopsAllInOrder(t *testing.T) {
	member, stopMember := startMember(t)
	defer stopMember()
	cfg := testConfig(t, member)
	core, logs := observer.New(zap.DebugLevel)
	base := goroutines()

	done := make(chan error, 1)
	go func() { done <- run(context.Background(), cfg, zap.New(core)) }()
	waitLog(t, logs, "etcdshim started")

	// A long stream through the front: the drain ends it.
	cc, err := grpc.NewClient("passthrough:///"+strings.TrimPrefix(cfg.ListenClientURLs[0], "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: "watched"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatalf("a stream through the shim: %v", err)
	}
	// The admin listener answers before the signal.
	hc := &http.Client{Transport: &http.Transport{}}
	resp, err := hc.Get(cfg.ListenAdminURL + "/drain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("the stream ended with %v, want Unavailable from the shim's drain", err)
	}
	if err := waitfor.Recv(t, done, time.Minute, "run to return after SIGTERM"); err != nil {
		t.Fatalf("run after SIGTERM: %v", err)
	}
	cc.Close()

	var stopped []string
	for _, e := range logs.FilterMessage("component stopped").All() {
		stopped = append(stopped, e.ContextMap()["component"].(string))
	}
	want := []string{"signals", "front", "admin listener", "v2 read cache", "v2 follower", "v2 tokens", "upstream pool"}
	if !slices.Equal(stopped, want) {
		t.Fatalf("components stopped in the order %v, want %v", stopped, want)
	}
	if logs.FilterMessage("stopped").Len() != 1 {
		t.Fatalf(`want one "stopped" line at the end, got %d`, logs.FilterMessage("stopped").Len())
	}
	waitForBaseline(t, base)
	for _, u := range append(append([]string{cfg.ListenAdminURL}, cfg.ListenClientURLs...), cfg.ListenMetricsURLs...) {
		ln, err := net.Listen("tcp", strings.TrimPrefix(u, "http://"))
		if err != nil {
			t.Fatalf("%s is still bound after the shutdown: %v", u, err)
		}
		ln.Close()
	}
}

// waitLog waits for a log line (the deadline only ends a hung test).
func waitLog(t *testing.T, logs *observer.ObservedLogs, msg string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); logs.FilterMessage(msg).Len() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			var all bytes.Buffer
			for _, e := range logs.All() {
				fmt.Fprintln(&all, e.Level, e.Message, e.ContextMap())
			}
			t.Fatalf("no %q line; the log:\n%s", msg, all.String())
		}
	}
}
