package metricsalias

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/etcdshim/etcdshim/internal/promchild"
	"github.com/prometheus/client_golang/prometheus"
)

// V2HTTPMetrics counts the shim's v2 traffic under etcd's v2-era names, so
// panels and alerts built on them (HighNumberOfFailedHTTPRequests) work again
// now that the shim serves the v2 API. They are merged into /metrics only
// when the member does not serve them itself.
type V2HTTPMetrics struct {
	received *prometheus.CounterVec
	failed   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewV2HTTPMetrics registers the three families on reg.
func NewV2HTTPMetrics(reg prometheus.Registerer) *V2HTTPMetrics {
	m := &V2HTTPMetrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "http", Name: "received_total",
			Help: "Counter of requests received into the system (successfully parsed and authd)."}, []string{"method"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "http", Name: "failed_total",
			Help: "Counter of handle failures of requests (non-watches), by method (GET/PUT etc.) and code (400, 500 etc.)."}, []string{"method", "code"}),
		// 3.4's buckets: 0.5ms to about 2s.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "etcd", Subsystem: "http", Name: "successful_duration_seconds",
			Help:    "Bucketed histogram of processing time (s) of successfully handled requests (non-watches), by method (GET/PUT etc.).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 13)}, []string{"method"}),
	}
	reg.MustRegister(m.received, m.failed, m.duration)
	return m
}

// childLimit bounds the label children a vector's cache remembers: label
// values such as the v2 method come from clients.
const childLimit = 64

// Wrap counts the v2 requests h answers. Watches are counted as received
// only, as in 3.4; a quorum GET is method QGET.
func (m *V2HTTPMetrics) Wrap(h http.Handler) http.Handler {
	received := promchild.New(childLimit, func(method string) prometheus.Counter { return m.received.WithLabelValues(method) })
	duration := promchild.New(childLimit, func(method string) prometheus.Observer { return m.duration.WithLabelValues(method) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		quorum, wait := queryTrue(r.URL, "quorum"), queryTrue(r.URL, "wait")
		if method == http.MethodGet && quorum {
			method = "QGET"
		}
		received.Get(method).Inc()
		if wait {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &codeRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		if rec.code >= 400 {
			m.failed.WithLabelValues(method, strconv.Itoa(rec.code)).Inc()
			return
		}
		duration.Get(method).Observe(time.Since(start).Seconds())
	})
}

// queryTrue is u.Query().Get(name) == "true" without building the map for
// plain queries; a query with escapes takes the full parse.
func queryTrue(u *url.URL, name string) bool {
	q := u.RawQuery
	if q == "" {
		return false
	}
	if strings.ContainsAny(q, "%+") {
		return u.Query().Get(name) == "true"
	}
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if strings.Contains(kv, ";") {
			continue // url.ParseQuery rejects and skips such pairs
		}
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			return v == "true"
		}
	}
	return false
}

type codeRecorder struct {
	http.ResponseWriter
	code int
}

func (c *codeRecorder) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *codeRecorder) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
