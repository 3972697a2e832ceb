package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/freeport"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"github.com/etcdshim/etcdshim/upstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// fakeMember is a gRPC server standing in for an etcd member in unit tests:
// the standard health service, where Check("slow") blocks until released and
// records the metadata of every Check (the pool's own probes call it too).
type fakeMember struct {
	*health.Server
	addr    string
	started chan struct{}
	release chan struct{}
	mu      sync.Mutex
	metas   []metadata.MD
	srv     *grpc.Server
}

func (f *fakeMember) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.metas = append(f.metas, md)
	f.mu.Unlock()
	if req.GetService() == "slow" {
		close(f.started)
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
	if dl, ok := ctx.Deadline(); ok && req.GetService() == "deadline" {
		return nil, status.Error(codes.DeadlineExceeded, time.Until(dl).Round(time.Second).String())
	}
	return f.Server.Check(ctx, req)
}

// checks counts the Checks the member answered or is answering.
func (f *fakeMember) checks() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.metas)
}

func startFakeMember(t *testing.T) *fakeMember {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMember{Server: health.NewServer(), addr: ln.Addr().String(), started: make(chan struct{}), release: make(chan struct{}), srv: grpc.NewServer()}
	healthpb.RegisterHealthServer(f.srv, f)
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(f.srv.Stop)
	return f
}

type testShim struct {
	srv  *Server
	pool *upstream.Pool
	addr string
}

func startTestShim(t *testing.T, upstreams ...string) *testShim {
	t.Helper()
	return startTestShimOn(t, freeTestPort(t), upstreams...)
}

// startTestShimOn is startTestShim on a given port.
func startTestShimOn(t *testing.T, port int, upstreams ...string) *testShim {
	t.Helper()
	var eps []*url.URL
	for _, a := range upstreams {
		eps = append(eps, &url.URL{Scheme: "http", Host: a})
	}
	log := zaptest.NewLogger(t)
	pool, err := upstream.NewPool(upstream.Options{Endpoints: eps, DialTimeout: time.Second, HealthInterval: 100 * time.Millisecond, HealthTimeout: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	runUntilEnd(t, "the pool", pool.Run)
	srv := startServer(t, testOptions(fmt.Sprintf("http://127.0.0.1:%d", port)), pool, log)
	return &testShim{srv: srv, pool: pool, addr: fmt.Sprintf("127.0.0.1:%d", port)}
}

// startServer serves opts' listeners in front of pool until the test ends
// (and before the test's earlier cleanups, such as closing the pool, run).
func startServer(t *testing.T, opts Options, pool *upstream.Pool, log *zap.Logger) *Server {
	t.Helper()
	srv, err := New(opts, pool, Handlers{}, log)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv)
	return srv
}

// testOptions are the front's options as the shim's defaults set them, on
// the given client URLs, with a shutdown short enough for a test's end.
func testOptions(clientURLs ...string) Options {
	o := Options{
		DialTimeout: time.Second, HealthTimeout: time.Second, ShutdownTimeout: time.Second,
		ResponseWriteTimeout: 30 * time.Second, HostWhitelist: []string{"*"}, CORS: []string{"*"}, DebugAccess: "loopback",
	}
	for _, raw := range clientURLs {
		u, err := url.Parse(raw)
		if err != nil {
			panic(err)
		}
		o.ClientURLs = append(o.ClientURLs, u)
	}
	return o
}

// serve binds srv's listeners and runs it until the test ends.
func serve(t *testing.T, srv *Server) {
	t.Helper()
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	runUntilEnd(t, "the server", srv.Run)
}

// runUntilEnd runs run until the test ends, and then waits for it to
// return.
func runUntilEnd(t *testing.T, what string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := waitfor.Recv(t, done, hangGuard, what+" to stop"); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	})
}

// freeTestPort reserves a port for a shim the test starts later (listening
// on port 0 and closing again would race with other packages' tests).
func freeTestPort(t *testing.T) int {
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func dialShim(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestTunnelUnaryStreamMetadataDeadline(t *testing.T) {
	member := startFakeMember(t)
	shim := startTestShim(t, member.addr)
	hc := healthpb.NewHealthClient(dialShim(t, shim.addr))

	ctx := metadata.AppendToOutgoingContext(context.Background(), "token", "secret-token")
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check through the shim: %v %v", resp, err)
	}
	// The client's Check is the one with a token: the pool's probes carry none.
	var tok []string
	member.mu.Lock()
	for _, md := range member.metas {
		if v := md.Get("token"); len(v) > 0 {
			tok = v
		}
	}
	member.mu.Unlock()
	if len(tok) != 1 || tok[0] != "secret-token" {
		t.Fatalf("token metadata did not reach the member: %v", tok)
	}

	dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = hc.Check(dctx, &healthpb.HealthCheckRequest{Service: "deadline"})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(status.Convert(err).Message(), "30s") {
		t.Fatalf("deadline did not propagate: %v", err)
	}

	member.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	wctx, wcancel := context.WithCancel(context.Background())
	w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch message: %v %v", r, err)
	}
	member.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("streamed update: %v %v", r, err)
	}
	wcancel()
	if _, err := w.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestGracefulShutdownFinishesUnaryEndsStreams(t *testing.T) {
	member := startFakeMember(t)
	shim := startTestShim(t, member.addr)
	hc := healthpb.NewHealthClient(dialShim(t, shim.addr))

	member.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	w, err := hc.Watch(context.Background(), &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		_, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "slow"})
		slow <- err
	}()
	waitfor.Recv(t, member.started, hangGuard, "the slow call to reach the member")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- shim.srv.Shutdown(ctx)
	}()
	// Shutdown must wait for the unary call in flight. (A bounded look:
	// it cannot fail a correct shim, only miss a wrong one.)
	select {
	case err := <-done:
		t.Fatalf("shutdown returned while a unary call was in flight: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(member.release)
	if err := waitfor.Recv(t, slow, hangGuard, "the released unary call"); err != nil {
		t.Fatalf("unary call accepted before shutdown failed: %v", err)
	}
	if err := waitfor.Recv(t, done, hangGuard, "Shutdown to return"); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	_, err = w.Recv()
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("stream ended with %v, want Unavailable from the shim", err)
	}
}

func TestFailoverToNextEndpoint(t *testing.T) {
	first := startFakeMember(t)
	second := startFakeMember(t)
	shim := startTestShim(t, first.addr, second.addr)
	if got := shim.pool.Current().Host; got != first.addr {
		t.Fatalf("current %s, want the first endpoint %s", got, first.addr)
	}
	first.srv.Stop()
	cc := dialShim(t, shim.addr)
	hc := healthpb.NewHealthClient(cc)
	var err error
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("requests did not fail over: %v", err)
	}
	if got := shim.pool.Current().Host; got != second.addr {
		t.Fatalf("current %s, want the fallback %s", got, second.addr)
	}
}

func TestHTTP1PassThroughAndCORS(t *testing.T) {
	member := startFakeMember(t)
	shim := startTestShim(t, member.addr)
	resp, err := http.Get("http://" + shim.addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The fake member speaks only gRPC, so its /health cannot answer: the
	// shim must say so in etcd's shape rather than hang or reset.
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"health":"false"`) {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("missing CORS header: %v", resp.Header)
	}
	// A preflight on a route the shim answers itself (a passed-through one
	// gets the member's answer).
	req, _ := http.NewRequest(http.MethodOptions, "http://"+shim.addr+"/health", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Methods") == "" {
		t.Fatalf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestPickerRetriesOnNextMember(t *testing.T) {
	first := startFakeMember(t)
	second := startFakeMember(t)
	shim := startTestShim(t, first.addr, second.addr)
	first.srv.Stop()
	// The probe has not run yet: the picker itself must notice and move on.
	hc := healthpb.NewHealthClient(shim.pool.ClientConn())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("idempotent call was not retried on the next member: %v", err)
	}
}

// A client that connects the moment the port opens, as a readiness probe
// does, must get an answer: the HTTP side must be ready before the first
// connection is accepted.
func TestConnectionAtStartIsServed(t *testing.T) {
	member := startFakeMember(t)
	for i := 0; i < 20; i++ {
		port := freeTestPort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		answered := make(chan error, 1)
		go func() {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					continue // not listening yet
				}
				defer c.Close()
				_, _ = c.Write([]byte("GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil && !strings.HasPrefix(line, "HTTP/1.1 ") {
					err = fmt.Errorf("answer %q", line)
				}
				answered <- err
				return
			}
			answered <- errors.New("never connected")
		}()
		startTestShimOn(t, port, member.addr)
		if err := waitfor.Recv(t, answered, hangGuard, "the early client's answer"); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}
