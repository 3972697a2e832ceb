package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Handlers are the components that answer HTTP requests themselves; a nil
// handler means the request passes through to the upstream member.
type Handlers struct {
	// Gateway answers /v3/, /v3beta/ and /v3alpha/.
	Gateway http.Handler
	// V2 answers /v2/.
	V2 http.Handler
	// Metrics answers /metrics; ShimMetrics answers /metrics/shim.
	Metrics     http.Handler
	ShimMetrics http.Handler
	// Legacy answers /debug/legacy.
	Legacy http.Handler
	// Version answers /version.
	Version http.Handler
	// Health answers /health (default: the proxy's own upstream check).
	Health http.Handler
}

// Options configure the front. cmd/etcdshim fills them from the Config.
type Options struct {
	// ClientURLs are the client listeners (http:// or https://): gRPC, the
	// JSON gateway, v2, /metrics and everything that passes through.
	ClientURLs []*url.URL
	// MetricsURLs are listeners serving only /metrics, /metrics/shim,
	// /health and the debug pages, as etcd's --listen-metrics-urls.
	MetricsURLs []*url.URL
	// TLS terminates the https:// listeners (see ServerTLS).
	TLS *tls.Config
	// DialTimeout bounds dialling a member for a gRPC connection (default 2s).
	DialTimeout time.Duration
	// HealthTimeout bounds the shim's own /health (default 1s).
	HealthTimeout time.Duration
	// ShutdownTimeout is how long Run lets requests and unary calls finish
	// once its context ended (default 10s).
	ShutdownTimeout time.Duration
	// ResponseWriteTimeout bounds one write of a started response to a
	// client that does not read (0: no bound).
	ResponseWriteTimeout time.Duration
	// HostWhitelist and CORS are etcd's --host-whitelist and --cors for what
	// the shim answers itself (empty: any).
	HostWhitelist, CORS []string
	// DebugAccess says who may read the debug pages on the client
	// listeners: loopback (also when empty), all or none.
	DebugAccess string
	// EnablePprof serves Go's profiles under /debug/pprof/.
	EnablePprof bool
	// Registerer receives the front's etcdshim_* metrics (nil: none).
	Registerer prometheus.Registerer
}

// Server is the shim's front: its listeners and everything behind them.
type Server struct {
	opts Options
	pool *upstream.Pool
	log  *zap.Logger
	m    *metrics

	ctx    context.Context
	cancel context.CancelFunc

	listeners []net.Listener
	clients   []clientListener
	metricLns []net.Listener
	httpSrv   *http.Server
	httpLn    *connListener
	metricSrv *http.Server
	acceptWG  sync.WaitGroup
	failed    chan error // a Serve that ended other than by Shutdown

	mu       sync.Mutex
	tunnels  map[*tunnel]struct{}
	closing  bool
	tunnelWG sync.WaitGroup
}

type clientListener struct {
	ln     net.Listener
	secure bool
	url    string
}

// New builds a server on pool; Listen binds its listeners and Run serves
// them.
func New(opts Options, pool *upstream.Pool, h Handlers, log *zap.Logger) (*Server, error) {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.HealthTimeout <= 0 {
		opts.HealthTimeout = time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	for _, u := range append(slices.Clip(opts.ClientURLs), opts.MetricsURLs...) {
		if u.Scheme == "https" && opts.TLS == nil {
			return nil, fmt.Errorf("%s: https needs a certificate (--cert-file, --key-file)", u)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:    opts,
		pool:    pool,
		log:     log,
		m:       newMetrics(opts.Registerer),
		ctx:     ctx,
		cancel:  cancel,
		failed:  make(chan error, 2),
		tunnels: map[*tunnel]struct{}{},
	}
	router := s.router(h)
	s.httpSrv = &http.Server{
		Handler:           router,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		ConnContext:       withTLSState,
	}
	// The shim terminates TLS itself and hands the HTTP server plain
	// connections; HTTP/2 on them (ALPN h2 clients that are not gRPC) is
	// recognised by its preface.
	s.httpSrv.Protocols = new(http.Protocols)
	s.httpSrv.Protocols.SetHTTP1(true)
	s.httpSrv.Protocols.SetUnencryptedHTTP2(true)
	if len(opts.MetricsURLs) > 0 {
		s.metricSrv = &http.Server{
			Handler:           s.metricsRouter(h),
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          zap.NewStdLog(log.Named("http")),
		}
	}
	return s, nil
}

// Listen binds every listen URL, and nothing when one of them fails. Run
// serves what it bound (clients wait in the listen backlog until then), or
// releases it when its context has already ended.
func (s *Server) Listen() error {
	for _, u := range s.opts.ClientURLs {
		ln, err := s.bind(u)
		if err != nil {
			return err
		}
		s.clients = append(s.clients, clientListener{ln: ln, secure: u.Scheme == "https", url: u.String()})
	}
	for _, u := range s.opts.MetricsURLs {
		ln, err := s.bind(u)
		if err != nil {
			return err
		}
		if u.Scheme == "https" {
			ln = tls.NewListener(ln, s.opts.TLS)
		}
		s.metricLns = append(s.metricLns, ln)
	}
	var first net.Addr
	if len(s.clients) > 0 {
		first = s.clients[0].ln.Addr()
	}
	s.httpLn = newConnListener(first)
	for _, c := range s.clients {
		s.log.Info("serving clients", zap.String("url", c.url))
	}
	for _, u := range s.opts.MetricsURLs {
		s.log.Info("serving metrics", zap.String("url", u.String()))
	}
	return nil
}

// bind listens on u; on failure it closes every listener bound before.
func (s *Server) bind(u *url.URL) (net.Listener, error) {
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("listening on %s: %w", u, err)
	}
	s.listeners = append(s.listeners, ln)
	return ln, nil
}

// Run serves on what Listen bound until ctx ends or serving fails, then
// shuts down gracefully (Shutdown) within Options.ShutdownTimeout. It
// returns why serving failed, or what went wrong shutting down.
func (s *Server) Run(ctx context.Context) error {
	if ctx.Err() == nil {
		s.serve()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.failed:
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if serr := s.Shutdown(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
		err = errors.Join(err, serr)
	}
	return err
}

// serve starts the goroutines that accept and serve connections.
func (s *Server) serve() {
	// The HTTP side is ready before the first accept: a client may connect
	// the moment a port is bound (readiness probes poll for it), and its
	// connection goes to httpLn.
	go s.serveHTTP(s.httpSrv, s.httpLn)
	for _, c := range s.clients {
		s.acceptWG.Add(1)
		go s.accept(c.ln, c.secure)
	}
	for _, ln := range s.metricLns {
		go s.serveHTTP(s.metricSrv, ln)
	}
}

func (s *Server) serveHTTP(srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		select {
		case s.failed <- fmt.Errorf("serving %s: %w", ln.Addr(), err):
		default:
		}
	}
}

// accept serves one client listener until it is closed. Any other accept
// error (EMFILE, ENFILE, ECONNABORTED, ...) is taken as passing: the loop
// backs off from 5 ms to 1 s, as net/http does, and logs once per burst.
func (s *Server) accept(ln net.Listener, secure bool) {
	defer s.acceptWG.Done()
	var delay time.Duration
	failures := 0
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if failures == 0 {
				s.log.Warn("accepting client connections failed; retrying with backoff", zap.String("addr", ln.Addr().String()), zap.Error(err))
			}
			failures++
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		if failures > 0 {
			s.log.Info("accepting client connections again", zap.String("addr", ln.Addr().String()), zap.Int("failed_accepts", failures))
			failures, delay = 0, 0
		}
		if secure {
			c = tls.Server(c, s.opts.TLS)
		}
		go s.handleConn(c, secure)
	}
}

func (s *Server) serveHTTP1(c net.Conn) { s.httpLn.push(c) }

func (s *Server) trackTunnel(t *tunnel) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.tunnels[t] = struct{}{}
	s.tunnelWG.Add(1)
	return true
}

func (s *Server) untrackTunnel(t *tunnel) {
	s.mu.Lock()
	delete(s.tunnels, t)
	s.mu.Unlock()
	s.tunnelWG.Done()
}

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		ln.Close()
	}
}

// Shutdown stops accepting, tells gRPC clients to go away, lets unary calls
// and HTTP requests finish until ctx ends, then ends the remaining streams
// with gRPC status Unavailable and closes every connection.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	s.acceptWG.Wait()

	s.mu.Lock()
	s.closing = true
	tunnels := make([]*tunnel, 0, len(s.tunnels))
	for t := range s.tunnels {
		tunnels = append(tunnels, t)
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, t := range tunnels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-t.beginDrain():
			case <-t.done:
			case <-ctx.Done():
			}
			t.endStreams()
		}()
	}
	httpErr := make(chan error, 2)
	go func() { httpErr <- shutdownHTTP(ctx, s.httpSrv) }()
	go func() { httpErr <- shutdownHTTP(ctx, s.metricSrv) }()
	wg.Wait()
	s.tunnelWG.Wait()
	err := errors.Join(<-httpErr, <-httpErr)
	s.cancel()
	return err
}

func shutdownHTTP(ctx context.Context, srv *http.Server) error {
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		// Long polls and streams still open at the deadline are cut.
		_ = srv.Close()
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

type tlsStateKey struct{}

func withTLSState(ctx context.Context, c net.Conn) context.Context {
	if rc, ok := c.(*replayConn); ok {
		if tc, ok := rc.Conn.(*tls.Conn); ok {
			st := tc.ConnectionState()
			return context.WithValue(ctx, tlsStateKey{}, &st)
		}
	}
	return ctx
}

// TLSState returns the client connection's TLS state for a request the shim
// terminated TLS for, or nil.
func TLSState(r *http.Request) *tls.ConnectionState {
	if r.TLS != nil {
		return r.TLS
	}
	st, _ := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState)
	return st
}
