package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/etcdshim/etcdshim/internal/httpguard"
	"github.com/etcdshim/etcdshim/internal/muxfirst"
	"github.com/etcdshim/etcdshim/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// router sends each path to the component that answers it, or to the member.
// What the shim answers itself is wrapped in --host-whitelist and --cors as
// etcd 3.4 applies them; what passes through keeps the member's answer,
// CORS headers included.
func (s *Server) router(h Handlers) http.Handler {
	pass := s.passthrough()
	guard := httpguard.New(s.opts.HostWhitelist, s.opts.CORS).WithSecure(func(r *http.Request) bool { return TLSState(r) != nil })
	or := func(h http.Handler) http.Handler {
		if h == nil {
			return pass
		}
		return guard.Wrap(h)
	}
	mux := http.NewServeMux()
	health := or2(h.Health, http.HandlerFunc(s.serveHealth))
	mux.Handle("/health", s.instrument("health", guard.Wrap(health)))
	for _, p := range []string{"/v3/", "/v3beta/", "/v3alpha/"} {
		mux.Handle(p, s.instrument(strings.Trim(p, "/"), or(h.Gateway)))
	}
	v2 := s.instrument("v2", or(h.V2))
	mux.Handle("/v2/", v2)
	mux.Handle("/metrics", s.instrument("metrics", or(h.Metrics)))
	if h.ShimMetrics != nil {
		mux.Handle("/metrics/shim", s.instrument("metrics", guard.Wrap(h.ShimMetrics)))
	}
	s.debugRoutes(mux, h, func(next http.Handler) http.Handler { return guard.WrapHostOnly(s.debugAccess(next)) })
	mux.Handle("/version", s.instrument("version", or(h.Version)))
	mux.Handle("/", s.instrument("passthrough", pass))
	// /v2/ is the busiest route: it skips the mux's pattern matching.
	return canonicalPaths(muxfirst.Route("/v2/", v2, mux))
}

// debugRoutes mounts /debug/legacy and, with --enable-pprof, /debug/pprof
// (off by default, as in etcd: profiles expose internals and cost CPU).
func (s *Server) debugRoutes(mux *http.ServeMux, h Handlers, wrap func(http.Handler) http.Handler) {
	if h.Legacy != nil {
		mux.Handle("/debug/legacy", s.instrument("debug", wrap(h.Legacy)))
	}
	if s.opts.EnablePprof {
		for p, fn := range map[string]http.HandlerFunc{
			"/debug/pprof/": pprof.Index, "/debug/pprof/cmdline": redactedCmdline,
			"/debug/pprof/profile": pprof.Profile, "/debug/pprof/symbol": pprof.Symbol, "/debug/pprof/trace": pprof.Trace,
		} {
			mux.Handle(p, wrap(fn))
		}
	}
}

// debugAccess serves the debug pages on the client listeners only to the
// clients --debug-access allows (loopback by default): they name clients
// and users, and profiles cost CPU.
func (s *Server) debugAccess(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s.opts.DebugAccess {
		case "all":
		case "loopback", "":
			if isLoopback(r.RemoteAddr) {
				break
			}
			fallthrough
		default:
			http.Error(w, "etcdshim: the debug pages are served on --listen-metrics-urls and, per --debug-access, to loopback clients", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// redactedCmdline is pprof's /debug/pprof/cmdline with the value of every
// flag whose name mentions a password replaced.
func redactedCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, strings.Join(RedactArgs(os.Args), "\x00"))
}

// RedactArgs returns args with the values of password flags replaced by
// "[redacted]" (--flag=value and --flag value).
func RedactArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if !strings.HasPrefix(a, "-") || !strings.Contains(strings.ToLower(a), "password") {
			continue
		}
		if name, _, ok := strings.Cut(a, "="); ok {
			out[i] = name + "=[redacted]"
		} else if i+1 < len(out) {
			out[i+1] = "[redacted]"
			i++
		}
	}
	return out
}

// metricsRouter serves the --listen-metrics-urls listeners, as etcd's own
// (no host or CORS check, as etcd's metrics listener), and the debug pages.
func (s *Server) metricsRouter(h Handlers) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/health", s.instrument("health", or2(h.Health, http.HandlerFunc(s.serveHealth))))
	pass := s.passthrough()
	mux.Handle("/metrics", s.instrument("metrics", or2(h.Metrics, pass)))
	if h.ShimMetrics != nil {
		mux.Handle("/metrics/shim", s.instrument("metrics", h.ShimMetrics))
	}
	s.debugRoutes(mux, h, func(next http.Handler) http.Handler { return next })
	return mux
}

func or2(h, fallback http.Handler) http.Handler {
	if h == nil {
		return fallback
	}
	return h
}

func (s *Server) passthrough() http.Handler { return NewPassthrough(s.pool, s.log) }

// NewPassthrough forwards requests to the current member's client URL
// unchanged (components use it for the routes they do not answer).
func NewPassthrough(pool *upstream.Pool, log *zap.Logger) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pool.Current())
			pr.Out.Host = pr.In.Host
			// The member must see the client, not the shim, as the origin of
			// the request; X-Forwarded-For records the client.
			pr.SetXForwarded()
		},
		Transport:     pool.HTTPClient().Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("pass-through failed", zap.String("path", r.URL.Path), zap.Error(err))
			pool.RequestProbe()
			// The error names the member's address: it stays in the log.
			// 503, as the gateway and /health answer when no member can.
			http.Error(w, "etcdshim: "+upstream.NoMemberReason, http.StatusServiceUnavailable)
		},
		ErrorLog: zap.NewStdLog(log.Named("passthrough")),
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
	// writeTimeout, when set, bounds each write of the response: a client
	// that stops reading a started answer is cut after it instead of
	// holding the answer's memory for as long as it stays connected. A
	// long poll still waiting writes nothing and is not bounded.
	writeTimeout time.Duration
	rc           http.ResponseController
	until        time.Time // the deadline last set
}

// deadline moves the write deadline before a write or flush, unless the
// one set lies at least writeTimeout less a 32nd ahead (a streamed answer
// moves it about once a second, not per write; each move is a runtime
// timer update), so a write still gets at least 31/32 of the timeout.
// net/http clears the deadline after each answer (Go 1.20 on): none is left
// to this answer by an earlier one.
func (r *statusRecorder) deadline() {
	if r.writeTimeout <= 0 {
		return
	}
	now := time.Now()
	if r.until.Sub(now) >= r.writeTimeout-r.writeTimeout/32 {
		return
	}
	r.until = now.Add(r.writeTimeout)
	if r.rc.SetWriteDeadline(r.until) != nil {
		r.until = time.Time{} // not supported: try again next time
	}
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.deadline()
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Hijack lets the gateway take the connection for a websocket (the
// websocket library asserts http.Hijacker rather than unwrapping); the
// request is counted as 101.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	if r.code == 0 {
		r.code = http.StatusSwitchingProtocols
	}
	c, rw, err := h.Hijack()
	if err == nil && r.writeTimeout > 0 {
		// The connection leaves HTTP with no deadline of an earlier answer.
		_ = c.SetWriteDeadline(time.Time{})
		r.writeTimeout = 0
	}
	return c, rw, err
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		if r.code == 0 {
			r.code = http.StatusOK
		}
		r.deadline()
		f.Flush()
	}
}

// instrument counts requests per surface and status code.
func (s *Server) instrument(surface string, next http.Handler) http.Handler {
	dur := s.m.httpDuration.WithLabelValues(surface)
	codes := &codeCounters{vec: s.m.httpRequests, surface: surface}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		if t := s.opts.ResponseWriteTimeout; t > 0 {
			rec.writeTimeout, rec.rc = t, *http.NewResponseController(w)
		}
		next.ServeHTTP(rec, r)
		// What the handler left in the buffer is written after it returns,
		// under a deadline of its own if the last is getting old.
		rec.deadline()
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		codes.get(rec.code).Inc()
		dur.Observe(time.Since(start).Seconds())
	})
}

// codeCounters are one surface's request counters by status code, made on
// first use (so no zero series appear) and then found without formatting
// the code or hashing the labels.
type codeCounters struct {
	vec     *prometheus.CounterVec
	surface string
	byCode  [600]atomic.Pointer[prometheus.Counter]
}

func (c *codeCounters) get(code int) prometheus.Counter {
	if code < 0 || code >= len(c.byCode) {
		return c.vec.WithLabelValues(c.surface, strconv.Itoa(code))
	}
	if p := c.byCode[code].Load(); p != nil {
		return *p
	}
	ctr := c.vec.WithLabelValues(c.surface, strconv.Itoa(code))
	c.byCode[code].Store(&ctr)
	return ctr
}
