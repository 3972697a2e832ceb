package main

import (
	"net/http"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/proxy"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2cluster"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// buildHandlers constructs the components that answer HTTP themselves. Each
// gets its slice of the Config, a named logger and the shim's registry.
// Components that need cleanup append to c.closers.
func buildHandlers(cfg config.Config, log *zap.Logger, pool *proxy.Pool, shimReg *prometheus.Registry,
	runtimeReg *prometheus.Registry, c *components) (proxy.Handlers, error) {
	var h proxy.Handlers
	_, _ = shimReg, runtimeReg
	pass := proxy.NewPassthrough(pool, log.Named("passthrough"))

	advertise := cfg.AdvertiseClientURLs
	if len(advertise) == 0 {
		advertise = cfg.ListenClientURLs
	}
	cluster := v2cluster.New(v2cluster.Options{
		AdvertiseClientURLs: advertise,
		MemberShimURLs:      cfg.V2MemberShimURLs,
		Logger:              log.Named("v2cluster"),
	}, pool)

	v2 := http.NewServeMux()
	v2.Handle("/v2/members", cluster)
	v2.Handle("/v2/members/", cluster)
	v2.Handle("/v2/machines", cluster)
	v2.Handle("/v2/stats/", cluster)
	v2.Handle("/", pass)
	h.V2 = v2
	return h, nil
}
