package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/internal/gctune"
	"go.uber.org/zap"
)

// run serves until SIGINT or SIGTERM (or parent ends), then shuts down
// gracefully: the front first, the components behind it after.
func run(parent context.Context, cfg config.Config, log *zap.Logger) error {
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer gctune.Start(uint64(cfg.GCHeadroomBytes), log.Named("gc")).Stop()

	lc := &lifecycle{log: log}
	if cfg.Embedded {
		emb, err := startEmbedded(ctx, cfg, log.Named("embedded"))
		if err != nil {
			return err
		}
		lc.add(actor{name: "embedded etcd", run: emb.Run})
		cfg.Endpoints = []string{emb.ClientURL}
	}
	// Bind first: a start-up failure (a port in use) is the one line the
	// user sees, not preceded by the warnings of probes and watches that
	// would already have begun against the members.
	if err := build(cfg, log, lc); err != nil {
		return lc.abort(err)
	}
	// The first actor: it ends the others when the signal comes.
	lc.add(actor{name: "signals", run: func(actx context.Context) error {
		select {
		case <-ctx.Done():
			log.Info("shutting down", zap.Duration("shutdown-timeout", cfg.ShutdownTimeout))
		case <-actx.Done():
		}
		return nil
	}})
	log.Info("etcdshim started", zap.String("version", versionString()),
		zap.Strings("listen-client-urls", cfg.ListenClientURLs), zap.Strings("endpoints", cfg.Endpoints))
	if cfg.Embedded {
		log.Info("try it: ETCDCTL_API=3 etcdctl --endpoints " + cfg.ListenClientURLs[0] + " put foo bar; " +
			"ETCDCTL_API=2 etcdctl --endpoints " + cfg.ListenClientURLs[0] + " ls /; " +
			"curl -s " + cfg.ListenClientURLs[0] + "/v3beta/kv/range -d '{\"key\":\"Zm9v\"}'")
	}
	err := lc.run()
	log.Info("stopped")
	return err
}
