package main

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/metricsalias"
	"github.com/etcdshim/etcdshim/proxy"
	"github.com/etcdshim/etcdshim/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
)

// The wiring: build maps the one Config onto each component's own options,
// surface by surface (wire_metrics.go, wire_v3.go, wire_v2.go,
// wire_admin.go), and hands the long-running components to the lifecycle.

// deps are what every surface is built on.
type deps struct {
	cfg  config.Config
	log  *zap.Logger
	pool *upstream.Pool
	// pass forwards what a surface does not answer itself to the member.
	pass    http.Handler
	shimReg *prometheus.Registry
	legacy  *metricsalias.LegacyTracker
	// markAnonymous: the shim presents a client certificate to the
	// members, so a request without a token would run as its CN.
	markAnonymous bool
}

// build constructs every component, binds the listeners and adds each
// long-running component to lc, after those it depends on. On an error, lc
// holds what was built so far, for the caller to abort.
func build(cfg config.Config, log *zap.Logger, lc *lifecycle) error {
	shimReg := prometheus.NewRegistry()
	pool, err := newPool(cfg, log, shimReg)
	if err != nil {
		return err
	}
	lc.add(actor{name: "upstream pool", run: pool.Run})

	d := deps{cfg: cfg, log: log, pool: pool, pass: proxy.NewPassthrough(pool, log.Named("passthrough")),
		shimReg: shimReg, legacy: metricsalias.NewLegacyTracker(cfg.LegacyClientsMax, shimReg),
		markAnonymous: cfg.UpstreamCert != ""}
	if d.markAnonymous {
		log.Warn("the shim presents a client certificate to the members: v3 gRPC clients without a token are authenticated by the members as its CN; do not use a certificate whose CN is a v3 user with more rights than anonymous clients should have")
	}
	runtimeReg := prometheus.NewRegistry()
	runtimeReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := proxy.Handlers{Legacy: d.legacy}
	m, err := wireMetrics(d, runtimeReg)
	if err != nil {
		return err
	}
	h.Metrics, h.ShimMetrics = m.metrics, m.shimMetrics
	if h.Gateway, err = wireV3(d); err != nil {
		return err
	}
	v2, actors := wireV2(d, m.v2)
	h.V2 = v2
	lc.add(actors...)

	if err := wireAdmin(cfg, pool, log.Named("admin"), lc); err != nil {
		return err
	}
	return wireFront(cfg, pool, h, log, shimReg, lc)
}

// newPool is the upstream pool on --endpoints with the upstream TLS flags.
func newPool(cfg config.Config, log *zap.Logger, reg prometheus.Registerer) (*upstream.Pool, error) {
	upTLS, err := upstream.ClientTLS(upstream.TLSFiles{Cert: cfg.UpstreamCert, Key: cfg.UpstreamKey,
		CACert: cfg.UpstreamCACert, InsecureSkipVerify: cfg.UpstreamInsecureSkipVerify}, log.Named("tls"))
	if err != nil {
		return nil, &config.Error{Msg: err.Error()}
	}
	var eps []*url.URL
	for _, raw := range cfg.Endpoints {
		u, err := config.ParseEndpointURL(raw)
		if err != nil {
			return nil, &config.Error{Msg: "--endpoints: " + err.Error()}
		}
		eps = append(eps, u)
	}
	pool, err := upstream.NewPool(upstream.Options{
		Endpoints:      eps,
		TLS:            upTLS,
		DialTimeout:    cfg.DialTimeout,
		HealthInterval: cfg.HealthInterval,
		HealthTimeout:  cfg.HealthTimeout,
		Logger:         log.Named("pool"),
		Registerer:     reg,
		FailbackWindow: cfg.FailbackWindow,
		MoveTimeout:    cfg.ShutdownTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("upstream pool: %w", err)
	}
	return pool, nil
}

// wireFront builds the front on h, binds its listeners and adds it to lc:
// the last actor, stopped first.
func wireFront(cfg config.Config, pool *upstream.Pool, h proxy.Handlers, log *zap.Logger, reg prometheus.Registerer, lc *lifecycle) error {
	opts := proxy.Options{
		DialTimeout:          cfg.DialTimeout,
		HealthTimeout:        cfg.HealthTimeout,
		ShutdownTimeout:      cfg.ShutdownTimeout,
		ResponseWriteTimeout: cfg.ResponseWriteTimeout,
		HostWhitelist:        cfg.HostWhitelist,
		CORS:                 cfg.CORS,
		DebugAccess:          cfg.DebugAccess,
		EnablePprof:          cfg.EnablePprof,
		Registerer:           reg,
	}
	var err error
	if opts.ClientURLs, err = listenURLs(cfg.ListenClientURLs, "--listen-client-urls"); err != nil {
		return err
	}
	if opts.MetricsURLs, err = listenURLs(cfg.ListenMetricsURLs, "--listen-metrics-urls"); err != nil {
		return err
	}
	log = log.Named("proxy")
	if cfg.CertFile != "" {
		opts.TLS, err = proxy.ServerTLS(proxy.TLSFiles{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile,
			TrustedCAFile: cfg.TrustedCAFile, ClientCertAuth: cfg.ClientCertAuth}, log.Named("tls"))
		if err != nil {
			return &config.Error{Msg: err.Error()}
		}
	}
	srv, err := proxy.New(opts, pool, h, log)
	if err != nil {
		return &config.Error{Msg: err.Error()}
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	lc.add(actor{name: "front", run: srv.Run})
	return nil
}

func listenURLs(raws []string, flag string) ([]*url.URL, error) {
	var out []*url.URL
	for _, raw := range raws {
		u, err := config.ParseListenURL(raw)
		if err != nil {
			return nil, &config.Error{Msg: flag + ": " + err.Error()}
		}
		out = append(out, u)
	}
	return out, nil
}
