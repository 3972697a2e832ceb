package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/etcdshim/etcdshim/internal/muxfirst"
	"github.com/etcdshim/etcdshim/metricsalias"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2auth"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2cache"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2cluster"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2http"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2watch"
)

// wireV2 builds the v2 API (keys, watch, members, machines, stats, auth) and
// returns it with the actors that follow the v2 keyspace for it: the
// follower, and the read cache it feeds with the watch history.
func wireV2(d deps, v2Metrics *metricsalias.V2HTTPMetrics) (http.Handler, []actor) {
	cfg, log, pool, pass, shimReg, legacy := d.cfg, d.log, d.pool, d.pass, d.shimReg, d.legacy
	var actors []actor
	advertise := cfg.AdvertiseClientURLs
	if len(advertise) == 0 {
		advertise = cfg.ListenClientURLs
	}
	tokens := v2auth.NewTokens(pool, cfg.V2GuestUser, cfg.V2GuestPassword, cfg.V2TokenCacheSize)
	// Its background reads (shared Authenticate calls, permissions read
	// again) stop after every request is answered.
	actors = append(actors, actor{name: "v2 tokens", run: tokens.Run})
	// With a client certificate towards the members, a request without a
	// token would run as the certificate's CN: mark anonymous requests.
	markAnonymous := d.markAnonymous
	if markAnonymous {
		tokens.MarkAnonymous()
	}
	// The shim's own user (--user) for its background work and for what
	// 3.4 shows anyone (see docs/v2.md, "Auth"); never for a client's
	// request otherwise.
	ownUser, ownPassword, ok := strings.Cut(cfg.User, ":")
	if !ok {
		ownPassword = cfg.Password
	}
	own := tokens.Own(ownUser, ownPassword)
	if own != nil {
		// The pool's maintenance calls (Status to learn the leader, and a
		// drain's MoveLeader) run as it too: with auth on, 3.5+ members
		// answer them only to a user (MoveLeader: one with the root role).
		pool.SetIdentity(own)
	}
	// Every v2 handler reaches the member as its client through clientUp,
	// which renews a client's token once when the member refuses it.
	clientUp := tokens.Upstream(pool)
	// One request timeout and body limit for every v2 handler, as 3.4 has.
	limits := v2edge.Limits{Timeout: cfg.V2RequestTimeout, MaxRequestBytes: cfg.MaxRequestBytes}
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
		Limits: limits,
		Logger: log.Named("v2cluster"),
	}, clientUp)
	// One follower of the v2 keyspace feeds the watch history and the read
	// cache: one upstream watch, as the shim's own user (--user) when one
	// is set (with auth on it needs read on the v2 keyspace). It starts
	// before them and stops after them.
	var followIdentity v2follow.Identity
	if own != nil {
		followIdentity = own
	}
	follower := v2follow.New(v2follow.Options{Prefix: cfg.V2Prefix, Identity: followIdentity,
		Logger: log.Named("v2follow"), Registerer: shimReg}, clientUp)
	actors = append(actors, actor{name: "v2 follower", run: follower.Run})
	hub := v2watch.New(v2watch.Options{Prefix: cfg.V2Prefix, History: cfg.V2WatchHistory,
		Logger: log.Named("v2watch"), Registerer: shimReg}, follower, clientUp)
	store := v2store.NewV3(clientUp.ClientConn(), cfg.V2Prefix).WithTimeout(limits.Timeout)
	if cfg.V2ReadCacheMaxBytes > 0 {
		anonymous := ""
		if markAnonymous {
			anonymous = v2auth.AnonymousToken
		}
		cache := v2cache.New(v2cache.Options{Prefix: cfg.V2Prefix, MaxBytes: cfg.V2ReadCacheMaxBytes,
			AnonymousToken: anonymous, Logger: log.Named("v2cache"), Registerer: shimReg}, pool.ClientConn(), follower)
		actors = append(actors, actor{name: "v2 read cache", run: cache.Run})
		store.WithReadCache(cache)
	}
	keys := v2http.New(v2http.Options{
		Limits:      limits,
		MaxKeyDepth: cfg.V2MaxKeyDepth,
		MaxKeyBytes: cfg.V2MaxKeyBytes,
		Credentials: tokens,
		Watches:     hub,
		Legacy:      legacy,
		Logger:      log.Named("v2"),
	}, store)
	auth := v2auth.New(v2auth.Options{V2Prefix: cfg.V2Prefix, Limits: limits, Logger: log.Named("v2auth")}, clientUp, tokens)

	keysH := v2Metrics.Wrap(keys)
	v2 := http.NewServeMux()
	v2.Handle("/v2/keys", keysH)
	v2.Handle("/v2/keys/", keysH)
	v2.Handle("/v2/members", cluster)
	v2.Handle("/v2/members/", cluster)
	v2.Handle("/v2/machines", cluster)
	v2.Handle("/v2/stats/", cluster)
	v2.Handle("/v2/auth/", auth)
	v2.Handle("/", pass)
	// Keys requests skip the mux's pattern matching (muxfirst).
	return muxfirst.Route("/v2/keys/", keysH, v2), actors
}
