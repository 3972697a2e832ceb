package metricsalias

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// acceptHeader asks for etcd's delimited protobuf first, text otherwise.
const acceptHeader = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3`

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
	opts   Options
	flight singleflight.Group
	log    *zap.Logger

	mu   sync.Mutex
	down bool // an outage is being logged once

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

// fetch gets the member's page; concurrent callers share one fetch.
func (h *Handler) fetch(ctx context.Context, timeout time.Duration) (map[string]*dto.MetricFamily, error) {
	v, err, _ := h.flight.Do("scrape", func() (any, error) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.opts.ScrapeURL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", acceptHeader)
		resp, err := h.opts.HTTPClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("member answered %s", resp.Status)
		}
		dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
		page := map[string]*dto.MetricFamily{}
		for {
			mf := &dto.MetricFamily{}
			if err := dec.Decode(mf); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("decoding the member's metrics: %w", err)
			}
			for _, m := range mf.Metric {
				m.TimestampMs = nil // let Prometheus stamp at scrape time
			}
			page[mf.GetName()] = mf
		}
		h.scrapeDur.Observe(time.Since(start).Seconds())
		return page, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]*dto.MetricFamily), nil
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
func (h *Handler) Metrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, err := h.fetch(r.Context(), h.timeout(r))
		if err != nil {
			h.scrapeFail.Inc()
			h.mu.Lock()
			if !h.down {
				h.down = true
				h.log.Warn("member /metrics unreachable: answering 503 until it is back", zap.String("url", h.opts.ScrapeURL), zap.Error(err))
			}
			h.mu.Unlock()
			http.Error(w, "etcdshim: the member's metrics are unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		h.mu.Lock()
		if h.down {
			h.down = false
			h.log.Info("member /metrics reachable again", zap.String("url", h.opts.ScrapeURL))
		}
		h.mu.Unlock()
		added := applyAliases(page, h.opts.Aliases)
		h.aliasesOut.Set(float64(len(added)))
		if len(added) > 0 && h.opts.Legacy != nil {
			h.opts.Legacy.Observe(r, "metric-alias", "")
		}
		fams := make([]*dto.MetricFamily, 0, len(page)+len(added)+64)
		for _, f := range page {
			fams = append(fams, f)
		}
		fams = append(fams, added...)
		for _, g := range []prometheus.Gatherer{h.opts.Shim, h.opts.V2} {
			if g == nil {
				continue
			}
			own, err := g.Gather()
			if err != nil {
				h.log.Warn("gathering the shim's own metrics", zap.Error(err))
			}
			for _, f := range own {
				// The shim's etcdshim_* never collide with etcd's names; the
				// v2 etcd_http_* families only join when the member lacks them.
				if _, dup := page[f.GetName()]; !dup {
					fams = append(fams, f)
				}
			}
		}
		h.encode(w, r, fams)
	})
}

// encode writes the families in the format the scraper asked for. The set is
// duplicate-free by construction (aliases only where the member lacks the
// name), so it skips prometheus.Gatherers' per-series consistency hashing,
// which cost more than the rest of a scrape (see BENCHMARKS.md).
func (h *Handler) encode(w http.ResponseWriter, r *http.Request, fams []*dto.MetricFamily) {
	sort.Slice(fams, func(i, j int) bool { return fams[i].GetName() < fams[j].GetName() })
	format := expfmt.Negotiate(r.Header)
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			h.log.Debug("writing /metrics", zap.Error(err))
			return
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		_ = c.Close()
	}
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
