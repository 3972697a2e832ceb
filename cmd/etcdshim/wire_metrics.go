package main

import (
	"net/http"
	"strings"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/metricsalias"
	"github.com/prometheus/client_golang/prometheus"
)

// metricsSurface is what the metrics surface hands the others.
type metricsSurface struct {
	// metrics answers /metrics (the member's page with the aliases) and
	// shimMetrics /metrics/shim.
	metrics, shimMetrics http.Handler
	// v2 counts the v2 surface's requests.
	v2 *metricsalias.V2HTTPMetrics
}

// wireMetrics builds /metrics and /metrics/shim. It runs nothing of its own:
// the member's page is scraped when a scraper asks.
func wireMetrics(d deps, runtimeReg *prometheus.Registry) (metricsSurface, error) {
	cfg := d.cfg
	table, err := metricsalias.LoadTable(cfg.MetricAliases)
	if err != nil {
		return metricsSurface{}, &config.Error{Msg: "--metric-aliases: " + err.Error()}
	}
	aliases, err := table.Active(cfg.MetricAliasGroups)
	if err != nil {
		return metricsSurface{}, &config.Error{Msg: "--metric-alias-groups: " + err.Error()}
	}
	scrapeURL := cfg.MetricsEndpoint
	if scrapeURL == "" {
		scrapeURL = strings.TrimSuffix(cfg.Endpoints[0], "/") + "/metrics"
	}
	v2Reg := prometheus.NewRegistry()
	v2Metrics := metricsalias.NewV2HTTPMetrics(v2Reg)
	mh, err := metricsalias.New(metricsalias.Options{
		ScrapeURL:  scrapeURL,
		HTTPClient: d.pool.HTTPClient(),
		Timeout:    cfg.MetricsTimeout,
		Aliases:    aliases,
		Shim:       d.shimReg,
		V2:         v2Reg,
		Runtime:    runtimeReg,
		Legacy:     d.legacy,
		Registerer: d.shimReg,
		Logger:     d.log.Named("metrics"),
	})
	if err != nil {
		return metricsSurface{}, err
	}
	return metricsSurface{metrics: mh.Metrics(), shimMetrics: mh.ShimMetrics(), v2: v2Metrics}, nil
}
