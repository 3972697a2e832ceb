package metricsalias

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"
)

// Accept headers for the member: the format the scraper asked for, so the
// member's bytes can be served as they came (see page). Identity encoding: on
// the sidecar's loopback, gzip only costs CPU on both sides.
const (
	acceptText  = `text/plain;version=0.0.4`
	acceptProto = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3`
)

// Options configure the metrics handler.
type Options struct {
	// ScrapeURL is the member's /metrics.
	ScrapeURL string
	// HTTPClient reaches it (upstream TLS applied).
	HTTPClient *http.Client
	// Timeout bounds one upstream fetch.
	Timeout time.Duration
	// Aliases are the active aliases (Table.Active).
	Aliases []Alias
	// Shim gathers the shim's etcdshim_* series, merged into /metrics.
	Shim prometheus.Gatherer
	// V2 gathers the shim's etcd_http_* v2 series, merged where the member lacks them.
	V2 prometheus.Gatherer
	// Runtime gathers the shim's go_* and process_* series (/metrics/shim only).
	Runtime prometheus.Gatherer
	// Legacy records scrapers that receive aliases; may be nil.
	Legacy interface {
		Observe(r *http.Request, surface, user string)
	}
	Registerer prometheus.Registerer
	Logger     *zap.Logger
}

// Handler serves /metrics and /metrics/shim.
type Handler struct {
	opts Options
	log  *zap.Logger

	mu   sync.Mutex
	down bool    // an outage is being logged once
	cur  *flight // the upstream fetch in progress, if any

	scrapeDur  prometheus.Histogram
	scrapeFail prometheus.Counter
	aliasesOut prometheus.Gauge
}

// New builds the handler.
func New(opts Options) (*Handler, error) {
	if opts.ScrapeURL == "" {
		return nil, errors.New("metrics: no upstream scrape URL")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	h := &Handler{opts: opts, log: opts.Logger,
		scrapeDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "etcdshim_metrics_upstream_scrape_duration_seconds",
			Help: "Time to fetch and decode the member's /metrics.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		scrapeFail: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_metrics_upstream_scrape_failures_total",
			Help: "Upstream /metrics fetches that failed (answered 503)."}),
		aliasesOut: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcdshim_metrics_aliases_served",
			Help: "Alias families added to the last /metrics answer."}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{h.scrapeDur, h.scrapeFail, h.aliasesOut} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("registering metrics: %w", err)
			}
		}
	}
	return h, nil
}

// flight is one upstream fetch, shared by every scrape that arrives while it
// runs (whatever format each asks for); the page goes back to the buffer pool
// when the last of them has answered.
type flight struct {
	done  chan struct{}
	page  *page
	err   error
	users int // under Handler.mu
}

// fetch gets the member's page, joining a fetch in progress if there is one.
// release must be called once the page is no longer used.
func (h *Handler) fetch(ctx context.Context, timeout time.Duration, want expfmt.Format) (p *page, release func(), err error) {
	h.mu.Lock()
	f := h.cur
	leader := f == nil
	if leader {
		f = &flight{done: make(chan struct{})}
		h.cur = f
	}
	f.users++
	h.mu.Unlock()
	release = func() {
		h.mu.Lock()
		f.users--
		last := f.users == 0
		h.mu.Unlock()
		if last && f.page != nil {
			f.page.free()
		}
	}
	if leader {
		f.page, f.err = h.get(ctx, timeout, want)
		h.mu.Lock()
		h.cur = nil
		h.mu.Unlock()
		close(f.done)
	} else {
		select {
		case <-f.done:
		case <-ctx.Done():
			release()
			return nil, nil, ctx.Err()
		}
	}
	if f.err != nil {
		release()
		return nil, nil, f.err
	}
	return f.page, release, nil
}

// get fetches and indexes the member's page.
func (h *Handler) get(ctx context.Context, timeout time.Duration, want expfmt.Format) (*page, error) {
	start := time.Now()
	// The fetch outlives a scraper that goes away: others may have joined.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.opts.ScrapeURL, nil)
	if err != nil {
		return nil, err
	}
	accept := acceptProto
	if want.FormatType() == expfmt.TypeTextPlain {
		accept = acceptText
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := h.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("member answered %s", resp.Status)
	}
	body := io.Reader(resp.Body)
	size := resp.ContentLength
	if resp.Header.Get("Content-Encoding") == "gzip" { // asked for identity, but a proxy may not care
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("reading the member's metrics: %w", err)
		}
		defer zr.Close()
		body, size = zr, -1
	}
	p, err := readPage(body, expfmt.ResponseFormat(resp.Header), size)
	if err != nil {
		return nil, err
	}
	h.scrapeDur.Observe(time.Since(start).Seconds())
	return p, nil
}

// timeout is --metrics-timeout, or less when Prometheus says its scrape
// times out sooner.
func (h *Handler) timeout(r *http.Request) time.Duration {
	t := h.opts.Timeout
	if t <= 0 {
		t = 5 * time.Second
	}
	if s := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			if d := time.Duration(f*float64(time.Second)) - 250*time.Millisecond; d > 0 && d < t {
				t = d
			}
		}
	}
	return t
}

// Metrics serves GET /metrics.
//
// The issue asked for prometheus.Gatherers and promhttp.HandlerFor. Both are
// kept for /metrics/shim, but not here: Gatherers decodes nothing itself, so
// the member's page would have to be decoded into MetricFamily values first,
// and then it hashes and checks every series and re-sorts every family before
// promhttp encodes it all again; for a 3.7 page (1,800 lines) that was about
// 10 ms of CPU per scrape. The member's page is already sorted, valid and
// duplicate-free, and the shim only adds families the member lacks, so the
// member's bytes are served as they came, with the added families encoded by
// expfmt, in the format the scraper negotiated (see page and answer).
func (h *Handler) Metrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		format := expfmt.Negotiate(r.Header)
		p, release, err := h.fetch(r.Context(), h.timeout(r), format)
		if err != nil {
			if r.Context().Err() != nil {
				return // the scraper went away: not the member's fault
			}
			h.unavailable(w, err)
			return
		}
		defer release()
		a, err := p.answer(format, h.opts.Aliases, []prometheus.Gatherer{h.opts.Shim, h.opts.V2}, func(err error) {
			h.log.Warn("gathering the shim's own metrics", zap.Error(err))
		})
		if err != nil {
			h.unavailable(w, err)
			return
		}
		h.mu.Lock()
		if h.down {
			h.down = false
			h.log.Info("member /metrics reachable again", zap.String("url", h.opts.ScrapeURL))
		}
		h.mu.Unlock()
		h.aliasesOut.Set(float64(a.aliases))
		if a.aliases > 0 && h.opts.Legacy != nil {
			h.opts.Legacy.Observe(r, "metric-alias", "")
		}
		if err := a.write(w, format); err != nil {
			h.log.Debug("writing /metrics", zap.Error(err))
		}
	})
}

// unavailable answers 503 (so Prometheus' up for this target goes to 0),
// logging once per outage.
func (h *Handler) unavailable(w http.ResponseWriter, err error) {
	h.scrapeFail.Inc()
	h.mu.Lock()
	if !h.down {
		h.down = true
		h.log.Warn("member /metrics unreachable: answering 503 until it is back", zap.String("url", h.opts.ScrapeURL), zap.Error(err))
	}
	h.mu.Unlock()
	http.Error(w, "etcdshim: the member's metrics are unavailable: "+err.Error(), http.StatusServiceUnavailable)
}

// ShimMetrics serves GET /metrics/shim: the shim's own series with its Go
// runtime and process metrics.
func (h *Handler) ShimMetrics() http.Handler {
	gs := prometheus.Gatherers{}
	for _, g := range []prometheus.Gatherer{h.opts.Shim, h.opts.V2, h.opts.Runtime} {
		if g != nil {
			gs = append(gs, g)
		}
	}
	return promhttp.HandlerFor(gs, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
