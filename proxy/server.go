package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/config"
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

// Server is the shim's front: its listeners and everything behind them.
type Server struct {
	cfg  config.Config
	pool *Pool
	log  *zap.Logger
	m    *metrics

	ctx    context.Context
	cancel context.CancelFunc

	clientTLS *tls.Config
	listeners []net.Listener
	httpSrv   *http.Server
	httpLn    *connListener
	metricSrv *http.Server
	acceptWG  sync.WaitGroup

	mu       sync.Mutex
	tunnels  map[*tunnel]struct{}
	closing  bool
	tunnelWG sync.WaitGroup
}

// New builds a server; Start binds its listeners. reg receives the proxy's
// etcdshim_* metrics. pool.Run must be started by the caller.
func New(cfg config.Config, pool *Pool, h Handlers, log *zap.Logger, m *Metrics) (*Server, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:     cfg,
		pool:    pool,
		log:     log,
		m:       m.m,
		ctx:     ctx,
		cancel:  cancel,
		tunnels: map[*tunnel]struct{}{},
	}
	if cfg.CertFile != "" {
		tc, err := ServerTLSLogged(cfg, log.Named("tls"))
		if err != nil {
			cancel()
			return nil, err
		}
		s.clientTLS = tc
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
	if len(cfg.ListenMetricsURLs) > 0 {
		s.metricSrv = &http.Server{
			Handler:           s.metricsRouter(h),
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          zap.NewStdLog(log.Named("http")),
		}
	}
	return s, nil
}

// Start binds every listen URL and starts serving.
func (s *Server) Start() error {
	type client struct {
		ln     net.Listener
		secure bool
		url    string
	}
	var clients []client
	var first net.Addr
	for _, raw := range s.cfg.ListenClientURLs {
		u, err := config.ParseListenURL(raw)
		if err != nil {
			s.closeListeners()
			return err
		}
		ln, err := net.Listen("tcp", u.Host)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listening on %s: %w", raw, err)
		}
		if first == nil {
			first = ln.Addr()
		}
		s.listeners = append(s.listeners, ln)
		clients = append(clients, client{ln: ln, secure: u.Scheme == "https", url: raw})
	}
	// The HTTP side is ready before the first accept: a client may connect
	// the moment a port is bound (readiness probes poll for it), and its
	// connection goes to httpLn.
	s.httpLn = newConnListener(first)
	go func() { _ = s.httpSrv.Serve(s.httpLn) }()
	for _, c := range clients {
		s.acceptWG.Add(1)
		go s.accept(c.ln, c.secure)
		s.log.Info("serving clients", zap.String("url", c.url))
	}
	for _, raw := range s.cfg.ListenMetricsURLs {
		u, err := config.ParseListenURL(raw)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", u.Host)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listening on %s: %w", raw, err)
		}
		if u.Scheme == "https" {
			ln = tls.NewListener(ln, s.clientTLS)
		}
		s.listeners = append(s.listeners, ln)
		go func() { _ = s.metricSrv.Serve(ln) }()
		s.log.Info("serving metrics", zap.String("url", raw))
	}
	return nil
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
			c = tls.Server(c, s.clientTLS)
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

// Metrics is the proxy's metric set, shared by the pool and the server.
type Metrics struct{ m *metrics }

// NewMetrics registers the proxy's etcdshim_* metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics { return &Metrics{m: newMetrics(reg)} }

func errField(err error) zap.Field { return zap.Error(err) }
