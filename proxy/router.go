package proxy

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// router sends each path to the component that answers it, or to the member.
func (s *Server) router(h Handlers) http.Handler {
	pass := s.passthrough()
	or := func(h http.Handler) http.Handler {
		if h == nil {
			return pass
		}
		return h
	}
	mux := http.NewServeMux()
	health := or2(h.Health, http.HandlerFunc(s.serveHealth))
	mux.Handle("/health", s.instrument("health", health))
	for _, p := range []string{"/v3/", "/v3beta/", "/v3alpha/"} {
		mux.Handle(p, s.instrument(strings.Trim(p, "/"), or(h.Gateway)))
	}
	mux.Handle("/v2/", s.instrument("v2", or(h.V2)))
	mux.Handle("/metrics", s.instrument("metrics", or(h.Metrics)))
	if h.ShimMetrics != nil {
		mux.Handle("/metrics/shim", s.instrument("metrics", h.ShimMetrics))
	}
	if h.Legacy != nil {
		mux.Handle("/debug/legacy", s.instrument("debug", h.Legacy))
	}
	mux.Handle("/version", s.instrument("version", or(h.Version)))
	if s.cfg.EnablePprof {
		// Off by default, as in etcd: profiles expose internals and cost CPU.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", s.instrument("passthrough", pass))
	return cors(mux)
}

// metricsRouter serves the --listen-metrics-urls listeners, as etcd's own.
func (s *Server) metricsRouter(h Handlers) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/health", s.instrument("health", or2(h.Health, http.HandlerFunc(s.serveHealth))))
	pass := s.passthrough()
	mux.Handle("/metrics", s.instrument("metrics", or2(h.Metrics, pass)))
	if h.ShimMetrics != nil {
		mux.Handle("/metrics/shim", s.instrument("metrics", h.ShimMetrics))
	}
	return mux
}

func or2(h, fallback http.Handler) http.Handler {
	if h == nil {
		return fallback
	}
	return h
}

// cors sets the headers etcd sets on every HTTP answer with its default
// --cors=* and answers preflight requests.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setCORS(w.Header())
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func setCORS(h http.Header) {
	// One allocation for the three values, not one per Header.Set; the
	// keys are already canonical.
	v := make([]string, 3)
	v[0], v[1], v[2] = "*", "POST, GET, OPTIONS, PUT, DELETE", "accept, content-type, authorization"
	h["Access-Control-Allow-Origin"] = v[0:1:1]
	h["Access-Control-Allow-Methods"] = v[1:2:2]
	h["Access-Control-Allow-Headers"] = v[2:3:3]
}

func (s *Server) passthrough() http.Handler { return NewPassthrough(s.pool, s.log) }

// NewPassthrough forwards requests to the current member's client URL
// unchanged (components use it for the routes they do not answer).
func NewPassthrough(pool *Pool, log *zap.Logger) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pool.Current())
			pr.Out.Host = pr.In.Host
			// The member must see the client, not the shim, as the origin of
			// the request; X-Forwarded-For records the client.
			pr.SetXForwarded()
		},
		Transport:     pool.transport,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			// The shim sets CORS itself; do not send the member's twice.
			for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
				resp.Header.Del(k)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("pass-through failed", zap.String("path", r.URL.Path), zap.Error(err))
			pool.requestProbe()
			http.Error(w, "etcdshim: upstream member unreachable: "+err.Error(), http.StatusBadGateway)
		},
		ErrorLog: zap.NewStdLog(log.Named("passthrough")),
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
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
	return h.Hijack()
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		if r.code == 0 {
			r.code = http.StatusOK
		}
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
		next.ServeHTTP(rec, r)
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
