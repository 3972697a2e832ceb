package main

import (
	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/proxy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// buildHandlers constructs the components that answer HTTP themselves. Each
// gets its slice of the Config, a named logger and the shim's registry.
// Components that need cleanup append to c.closers.
func buildHandlers(cfg config.Config, log *zap.Logger, pool *proxy.Pool, shimReg *prometheus.Registry,
	runtimeReg *prometheus.Registry, c *components) (proxy.Handlers, error) {
	var h proxy.Handlers
	_ = runtimeReg
	// Components are added here as they land: gateway, v2, metrics.
	return h, nil
}
