package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/internal/httpguard"
	"github.com/etcdshim/etcdshim/metricsalias"
	"github.com/etcdshim/etcdshim/proxy"
	"github.com/etcdshim/etcdshim/rewrite/gateway"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2auth"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2cache"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2cluster"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2http"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2watch"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// buildHandlers constructs the components that answer HTTP themselves. Each
// gets its slice of the Config, a named logger and the shim's registry.
// Components that need cleanup append to c.closers.
func buildHandlers(cfg config.Config, log *zap.Logger, pool *proxy.Pool, shimReg *prometheus.Registry,
	runtimeReg *prometheus.Registry, c *components) (proxy.Handlers, error) {
	var h proxy.Handlers
	pass := proxy.NewPassthrough(pool, log.Named("passthrough"))

	legacy := metricsalias.NewLegacyTracker(cfg.LegacyClientsMax, shimReg)
	h.Legacy = legacy
	table, err := metricsalias.LoadTable(cfg.MetricAliases)
	if err != nil {
		return h, &config.Error{Msg: "--metric-aliases: " + err.Error()}
	}
	aliases, err := table.Active(cfg.MetricAliasGroups)
	if err != nil {
		return h, &config.Error{Msg: "--metric-alias-groups: " + err.Error()}
	}
	scrapeURL := cfg.MetricsEndpoint
	if scrapeURL == "" {
		scrapeURL = strings.TrimSuffix(cfg.Endpoints[0], "/") + "/metrics"
	}
	v2Reg := prometheus.NewRegistry()
	v2Metrics := metricsalias.NewV2HTTPMetrics(v2Reg)
	mh, err := metricsalias.New(metricsalias.Options{
		ScrapeURL:  scrapeURL,
		HTTPClient: pool.HTTPClient(),
		Timeout:    cfg.MetricsTimeout,
		Aliases:    aliases,
		Shim:       shimReg,
		V2:         v2Reg,
		Runtime:    runtimeReg,
		Legacy:     legacy,
		Registerer: shimReg,
		Logger:     log.Named("metrics"),
	})
	if err != nil {
		return h, err
	}
	h.Metrics, h.ShimMetrics = mh.Metrics(), mh.ShimMetrics()

	advertise := cfg.AdvertiseClientURLs
	if len(advertise) == 0 {
		advertise = cfg.ListenClientURLs
	}
	tokens := v2auth.NewTokens(pool, cfg.V2GuestUser, cfg.V2GuestPassword, cfg.V2TokenCacheSize)
	// With a client certificate towards the members, a request without a
	// token would run as the certificate's CN: mark anonymous requests.
	markAnonymous := cfg.UpstreamCert != ""
	if markAnonymous {
		tokens.MarkAnonymous()
		log.Warn("the shim presents a client certificate to the members: v3 gRPC clients without a token are authenticated by the members as its CN; do not use a certificate whose CN is a v3 user with more rights than anonymous clients should have")
	}
	// The shim's own user (--user) for its background work and for what
	// 3.4 shows anyone (see docs/v2.md, "Auth"); never for a client's
	// request otherwise.
	ownUser, ownPassword, ok := strings.Cut(cfg.User, ":")
	if !ok {
		ownPassword = cfg.Password
	}
	own := tokens.Own(ownUser, ownPassword)
	// Every v2 handler reaches the member as its client through clientUp,
	// which renews a client's token once when the member refuses it.
	clientUp := tokens.Upstream(pool)
	cluster := v2cluster.New(v2cluster.Options{
		AdvertiseClientURLs: advertise,
		MemberShimURLs:      cfg.V2MemberShimURLs,
		Token: func(r *http.Request) (context.Context, error) {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				return tokens.PublicContext(r.Context(), r, own)
			}
			ctx, _, err := tokens.Context(r.Context(), r)
			return ctx, err
		},
		MaxRequestBytes: cfg.MaxRequestBytes,
		Logger:          log.Named("v2cluster"),
	}, clientUp)
	// The hub follows the keyspace as the shim's own user (--user) when
	// one is set: with auth on it needs read on the v2 keyspace.
	var hubIdentity v2watch.Identity
	if own != nil {
		hubIdentity = own
	}
	hub := v2watch.New(v2watch.Options{Prefix: cfg.V2Prefix, History: cfg.V2WatchHistory, Identity: hubIdentity,
		Logger: log.Named("v2watch"), Registerer: shimReg}, clientUp)
	hubCtx, stopHub := context.WithCancel(context.Background())
	c.starters = append(c.starters, func() { go hub.Run(hubCtx) })
	c.closers = append(c.closers, stopHub)
	store := v2store.NewV3(clientUp.ClientConn(), cfg.V2Prefix)
	if cfg.V2ReadCacheMaxBytes > 0 {
		anonymous := ""
		if markAnonymous {
			anonymous = v2auth.AnonymousToken
		}
		cache := v2cache.New(v2cache.Options{Prefix: cfg.V2Prefix, MaxBytes: cfg.V2ReadCacheMaxBytes,
			AnonymousToken: anonymous, Logger: log.Named("v2cache"), Registerer: shimReg}, pool.ClientConn())
		cacheCtx, stopCache := context.WithCancel(context.Background())
		c.starters = append(c.starters, func() { go cache.Run(cacheCtx) })
		c.closers = append(c.closers, stopCache)
		store.WithReadCache(cache)
	}
	keys := v2http.New(v2http.Options{
		MaxRequestBytes: cfg.MaxRequestBytes,
		MaxKeyDepth:     cfg.V2MaxKeyDepth,
		MaxKeyBytes:     cfg.V2MaxKeyBytes,
		Credentials:     tokens,
		Watcher:         hub,
		Legacy:          legacy,
		Logger:          log.Named("v2"),
	}, store)
	auth := v2auth.New(v2auth.Options{V2Prefix: cfg.V2Prefix, MaxRequestBytes: cfg.MaxRequestBytes, Logger: log.Named("v2auth")}, clientUp, tokens)

	gwh, err := gateway.New(gateway.Options{
		LegacyPrefixes:  cfg.GatewayLegacyPrefixes,
		LegacyMode:      cfg.GatewayLegacyMode,
		MaxRequestBytes: cfg.MaxRequestBytes,
		Passthrough:     pass,
		MarkAnonymous:   markAnonymous,
		Registerer:      shimReg,
		Legacy:          legacy,
		Logger:          log.Named("gateway"),
		// The websocket Origin check follows --cors, as the CORS headers do.
		OriginAllowed: httpguard.New(cfg.HostWhitelist, cfg.CORS).OriginAllowed,
	}, pool.ClientConn())
	if err != nil {
		return h, err
	}
	h.Gateway = gwh

	v2 := http.NewServeMux()
	v2.Handle("/v2/keys", v2Metrics.Wrap(keys))
	v2.Handle("/v2/keys/", v2Metrics.Wrap(keys))
	v2.Handle("/v2/members", cluster)
	v2.Handle("/v2/members/", cluster)
	v2.Handle("/v2/machines", cluster)
	v2.Handle("/v2/stats/", cluster)
	v2.Handle("/v2/auth/", auth)
	v2.Handle("/", pass)
	h.V2 = v2
	return h, nil
}
