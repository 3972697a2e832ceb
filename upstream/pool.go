package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Options configure the pool.
type Options struct {
	// Endpoints in order of preference: the sidecar's own member first.
	Endpoints []*url.URL
	// TLS is the upstream client TLS configuration, used for https://
	// endpoints (nil: system roots, no client certificate).
	TLS            *tls.Config
	DialTimeout    time.Duration
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	Logger         *zap.Logger
	// Registerer receives the pool's etcdshim_* metrics (nil: none).
	Registerer prometheus.Registerer
	// FailbackWindow spreads the moves of tunnels back to a member that
	// recovered: each waits a random time below it (0: all at once).
	FailbackWindow time.Duration
	// MoveTimeout is how long a moving tunnel lets its unary calls finish
	// before it ends what is left with Unavailable (default 10s).
	MoveTimeout time.Duration
}

// Pool knows the upstream members, probes them, and picks where requests go:
// the first endpoint that is healthy, so traffic returns to the sidecar's own
// member as soon as it recovers.
type Pool struct {
	opts      Options
	eps       []*endpoint
	log       *zap.Logger
	m         *metrics
	http      *http.Client
	transport *http.Transport
	probeNow  chan struct{}
	cur       atomic.Pointer[endpoint]
	closeOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup

	// identity and statusNeedsUser: see leader.go.
	identity        atomic.Pointer[Credentials]
	statusNeedsUser atomic.Bool
}

type endpoint struct {
	url     *url.URL
	addr    string
	tls     *tls.Config // nil for http://
	conn    *grpc.ClientConn
	healthy atomic.Bool
	// downUntil (unix nanos) ignores probe successes for a moment after the
	// member said GOAWAY or refused a connection, so a stopping member is not
	// picked again between its last answers.
	downUntil atomic.Int64
	lastErr   atomic.Pointer[string]
	pool      *Pool
	idx       int // position in the order of preference

	// drain is the planned-drain state (drainOff, drainUp, drainSawDown).
	drain atomic.Int32
	// inflight counts the shim's own calls and streams on this member.
	inflight atomic.Int64
	// memberID and leaderID come from the member's last Status (leader.go).
	memberID atomic.Uint64
	leaderID atomic.Uint64

	mu sync.Mutex // guards relays and streams
	// relays are the client connections relayed to this member, each with
	// whether a move is scheduled for it.
	relays  map[Relay]bool
	streams map[*ownStream]struct{}
}

// NewPool dials (lazily) every endpoint. Run probes them until its context
// ends and then closes the pool; a pool that is never run is closed with
// Close.
func NewPool(opts Options) (*Pool, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("no upstream endpoints")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.MoveTimeout <= 0 {
		opts.MoveTimeout = 10 * time.Second
	}
	p := &Pool{
		opts:     opts,
		log:      opts.Logger,
		m:        newMetrics(opts.Registerer),
		probeNow: make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	p.transport = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     httpTLS(opts.TLS),
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	p.http = &http.Client{Transport: p.transport}
	httpTLSByAddr := map[string]*tls.Config{}
	for _, u := range opts.Endpoints {
		ep := &endpoint{url: u, addr: u.Host, pool: p, idx: len(p.eps),
			relays: map[Relay]bool{}, streams: map[*ownStream]struct{}{}}
		var creds credentials.TransportCredentials = insecure.NewCredentials()
		if u.Scheme == "https" {
			ep.tls = tunnelTLS(opts.TLS, u)
			httpTLSByAddr[u.Host] = httpTLS(grpcTLS(opts.TLS, u))
			// gRPC's credentials keep the callbacks (client certificate and
			// verification read the files at each handshake) through their
			// own clone of the configuration.
			creds = credentials.NewTLS(grpcTLS(opts.TLS, u))
		}
		conn, err := grpc.NewClient("passthrough:///"+u.Host,
			grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
			// Static flow-control windows at the size BDP estimation grows
			// to: without them every response is followed by a BDP ping
			// round trip, a write and a read on both shim and member per
			// unary call.
			grpc.WithStaticStreamWindowSize(4<<20),
			grpc.WithStaticConnWindowSize(16<<20),
			// A member that restarts must be found again within a probe or
			// two, not after gRPC's default backoff of up to two minutes.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: opts.DialTimeout,
			}),
		)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", u, err)
		}
		ep.conn = conn
		ep.healthy.Store(true) // optimistic until the first probe says otherwise
		p.eps = append(p.eps, ep)
	}
	p.cur.Store(p.eps[0])
	if len(httpTLSByAddr) > 0 {
		// Each member's HTTP connections use the configuration bound to its
		// name, as its gRPC connection does.
		dialer := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
		p.transport.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			tc := httpTLSByAddr[addr]
			if tc == nil {
				host, _, _ := net.SplitHostPort(addr)
				tc = httpTLS(grpcTLS(opts.TLS, &url.URL{Host: addr}))
				tc.ServerName = host
			}
			return (&tls.Dialer{NetDialer: dialer, Config: tc}).DialContext(ctx, network, addr)
		}
	}
	return p, nil
}

func httpTLS(base *tls.Config) *tls.Config {
	if base == nil {
		return nil
	}
	c := base.Clone()
	c.NextProtos = nil
	return c
}

func tunnelTLS(base *tls.Config, u *url.URL) *tls.Config {
	c := grpcTLS(base, u)
	c.NextProtos = []string{"h2"}
	return c
}

func grpcTLS(base *tls.Config, u *url.URL) *tls.Config {
	if base == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	}
	name := base.ServerName
	if name == "" {
		name = u.Hostname()
	}
	// Bound to the member's name: a configuration whose CA bundle reloads
	// verifies the member for it (see forServer).
	return forServer(base, name)
}

// Run probes the endpoints until ctx ends or Close is called, and closes the
// pool before it returns. It reports no error of its own: a member that
// fails is the pool's business, not a reason to stop the shim.
func (p *Pool) Run(ctx context.Context) error {
	p.wg.Add(1)
	defer p.Close()
	defer p.wg.Done()
	if ctx.Err() != nil {
		return nil
	}
	p.probeAll(ctx)
	p.rebalance()
	t := time.NewTicker(p.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.stop:
			return nil
		case <-t.C:
		case <-p.probeNow:
		}
		p.probeAll(ctx)
		p.rebalance()
	}
}

// RequestProbe asks for a probe round now (a request failed on the current
// member), without waiting for it.
func (p *Pool) RequestProbe() {
	select {
	case p.probeNow <- struct{}{}:
	default:
	}
}

func (p *Pool) probeAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ep := range p.eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep.probe(ctx)
		}()
	}
	wg.Wait()
	p.choose()
}

// probe asks the member's gRPC health service: cheap (no raft round trip),
// needs no credentials, and etcd marks itself NOT_SERVING while stopping.
func (ep *endpoint) probe(parent context.Context) {
	p := ep.pool
	ctx, cancel := context.WithTimeout(parent, p.opts.HealthTimeout)
	defer cancel()
	start := time.Now()
	resp, err := healthpb.NewHealthClient(ep.conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	p.m.upstreamProbe.WithLabelValues(ep.url.String()).Observe(time.Since(start).Seconds())
	ok := false
	switch {
	case err == nil:
		ok = resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		if !ok {
			err = fmt.Errorf("health status %s", resp.GetStatus())
		}
	case status.Code(err) == codes.Unimplemented:
		ok = true // an old member without the health service answered: it is up
	}
	if ok && time.Now().UnixNano() < ep.downUntil.Load() {
		return
	}
	if ok {
		ep.learnLeader(ctx)
	}
	if ep.drain.Load() != drainOff {
		if ok = ep.drainedProbe(ok); !ok {
			err = errDrained
		}
	}
	if !ok && (parent.Err() != nil || p.closing()) {
		// The pool is shutting down, not the member: no verdict, and no
		// "unhealthy" warning on the way out.
		return
	}
	ep.setHealthy(ok, err)
}

// closing reports whether Close has been called.
func (p *Pool) closing() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

func (ep *endpoint) setHealthy(ok bool, err error) {
	was := ep.healthy.Swap(ok)
	p := ep.pool
	v := 0.0
	if ok {
		v = 1
	}
	p.m.upstreamHealthy.WithLabelValues(ep.url.String()).Set(v)
	if ok {
		ep.lastErr.Store(nil)
	} else if err != nil {
		s := err.Error()
		ep.lastErr.Store(&s)
	}
	if was != ok {
		if ok {
			p.log.Info("upstream member is healthy", zap.String("endpoint", ep.url.String()))
		} else {
			p.log.Warn("upstream member is unhealthy", zap.String("endpoint", ep.url.String()), zap.Error(err))
		}
	}
}

// markDown takes the endpoint out of rotation until a probe after a short
// grace period finds it serving again.
func (ep *endpoint) markDown(why string) {
	ep.downUntil.Store(time.Now().Add(2 * ep.pool.opts.HealthInterval).UnixNano())
	ep.setHealthy(false, errors.New(why))
	ep.pool.choose()
	ep.pool.RequestProbe()
}

// choose points cur at the first healthy endpoint (or the first one when none is).
func (p *Pool) choose() {
	next := p.eps[0]
	for _, ep := range p.eps {
		if ep.healthy.Load() {
			next = ep
			break
		}
	}
	prev := p.cur.Swap(next)
	if prev != next {
		p.m.failovers.Inc()
		p.log.Info("upstream switched", zap.String("from", prev.url.String()), zap.String("to", next.url.String()))
	}
	for _, ep := range p.eps {
		v := 0.0
		if ep == next {
			v = 1
		}
		p.m.upstreamCurrent.WithLabelValues(ep.url.String()).Set(v)
	}
}

func (p *Pool) current() *endpoint { return p.cur.Load() }

// Current is the client URL of the member requests go to now.
func (p *Pool) Current() *url.URL { return p.current().url }

// Endpoints are the configured members in order of preference.
func (p *Pool) Endpoints() []*url.URL {
	out := make([]*url.URL, len(p.eps))
	for i, ep := range p.eps {
		out[i] = ep.url
	}
	return out
}

// Healthy reports whether any member answered its last probe.
func (p *Pool) Healthy() bool {
	for _, ep := range p.eps {
		if ep.healthy.Load() {
			return true
		}
	}
	return false
}

// LastErrors lists why unhealthy members are unhealthy.
func (p *Pool) LastErrors() map[string]string {
	out := map[string]string{}
	for _, ep := range p.eps {
		if s := ep.lastErr.Load(); s != nil && !ep.healthy.Load() {
			out[ep.url.String()] = *s
		}
	}
	return out
}

// HTTPClient reaches the members over HTTP with the upstream TLS settings.
func (p *Pool) HTTPClient() *http.Client { return p.http }

// ClientConn returns a connection that sends every call to the current
// member, failing over to the others when it is unreachable.
func (p *Pool) ClientConn() grpc.ClientConnInterface { return picker{p} }

// dialRelay opens a raw connection to the current member, falling over to
// the next ones in order when a dial fails.
func (p *Pool) dialRelay(ctx context.Context) (net.Conn, *endpoint, error) {
	tried := map[*endpoint]bool{}
	var errs []error
	for attempt := 0; attempt < len(p.eps); attempt++ {
		ep := p.current()
		if tried[ep] {
			ep = p.nextUntried(tried)
			if ep == nil {
				break
			}
		}
		tried[ep] = true
		c, err := ep.dial(ctx, p.opts.DialTimeout)
		if err == nil {
			return c, ep, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep.url, err))
		ep.markDown("dial failed: " + err.Error())
	}
	return nil, nil, fmt.Errorf("no upstream member reachable: %w", errors.Join(errs...))
}

func (p *Pool) nextUntried(tried map[*endpoint]bool) *endpoint {
	for _, ep := range p.eps {
		if !tried[ep] && ep.healthy.Load() {
			return ep
		}
	}
	for _, ep := range p.eps {
		if !tried[ep] {
			return ep
		}
	}
	return nil
}

func (ep *endpoint) dial(ctx context.Context, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if ep.tls == nil {
		return d.DialContext(ctx, "tcp", ep.addr)
	}
	td := &tls.Dialer{NetDialer: d, Config: ep.tls}
	return td.DialContext(ctx, "tcp", ep.addr)
}

// Close stops probing and closes the gRPC connections.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.wg.Wait()
		for _, ep := range p.eps {
			ep.conn.Close()
		}
		p.transport.CloseIdleConnections()
	})
}
