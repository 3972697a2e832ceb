package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/internal/gctune"
	"github.com/etcdshim/etcdshim/proxy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
)

// run serves until SIGINT or SIGTERM, then shuts down gracefully.
func run(parent context.Context, cfg config.Config, log *zap.Logger) error {
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer gctune.Start(uint64(cfg.GCHeadroomBytes), log.Named("gc")).Stop()

	if cfg.Embedded {
		emb, err := startEmbedded(ctx, cfg, log.Named("embedded"))
		if err != nil {
			return err
		}
		defer emb.Close()
		cfg.Endpoints = []string{emb.ClientURL}
	}

	c, err := build(cfg, log)
	if err != nil {
		return err
	}
	defer c.pool.Close()
	defer func() {
		for _, closer := range c.closers {
			closer()
		}
	}()
	// Bind first: a start-up failure (a port in use) is the one line the
	// user sees, not preceded by the warnings of probes and watches that had
	// already begun against the members.
	if err := c.server.Start(); err != nil {
		return err
	}
	stopAdmin, err := startAdmin(cfg, c.pool, log.Named("admin"))
	if err != nil {
		return err
	}
	defer stopAdmin()
	poolCtx, cancelPool := context.WithCancel(context.Background())
	defer cancelPool()
	go c.pool.Run(poolCtx)
	for _, start := range c.starters {
		start()
	}
	log.Info("etcdshim started", zap.String("version", versionString()),
		zap.Strings("listen-client-urls", cfg.ListenClientURLs), zap.Strings("endpoints", cfg.Endpoints))
	if cfg.Embedded {
		log.Info("try it: ETCDCTL_API=3 etcdctl --endpoints " + cfg.ListenClientURLs[0] + " put foo bar; " +
			"ETCDCTL_API=2 etcdctl --endpoints " + cfg.ListenClientURLs[0] + " ls /; " +
			"curl -s " + cfg.ListenClientURLs[0] + "/v3beta/kv/range -d '{\"key\":\"Zm9v\"}'")
	}

	<-ctx.Done()
	log.Info("shutting down", zap.Duration("shutdown-timeout", cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := c.server.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown", zap.Error(err))
	}
	log.Info("stopped")
	return nil
}

// components is everything build wires together.
type components struct {
	pool   *proxy.Pool
	server *proxy.Server
	// starters begin background work (watches, caches) once the listeners
	// are bound; closers end it.
	starters []func()
	closers  []func()
}

// build constructs every component from the one Config.
func build(cfg config.Config, log *zap.Logger) (*components, error) {
	shimReg := prometheus.NewRegistry()
	runtimeReg := prometheus.NewRegistry()
	runtimeReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	upTLS, err := proxy.UpstreamTLSLogged(cfg, log.Named("tls"))
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
	pm := proxy.NewMetrics(shimReg)
	pool, err := proxy.NewPool(proxy.PoolOptions{
		Endpoints:      eps,
		TLS:            upTLS,
		DialTimeout:    cfg.DialTimeout,
		HealthInterval: cfg.HealthInterval,
		HealthTimeout:  cfg.HealthTimeout,
		Logger:         log.Named("pool"),
		Metrics:        pm,
		FailbackWindow: cfg.FailbackWindow,
		MoveTimeout:    cfg.ShutdownTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("upstream pool: %w", err)
	}
	c := &components{pool: pool}
	h, err := buildHandlers(cfg, log, pool, shimReg, runtimeReg, c)
	if err != nil {
		pool.Close()
		return nil, err
	}
	srv, err := proxy.New(cfg, pool, h, log.Named("proxy"), pm)
	if err != nil {
		pool.Close()
		return nil, &config.Error{Msg: err.Error()}
	}
	c.server = srv
	return c, nil
}
