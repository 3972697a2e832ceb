package v2http

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/metricsalias"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2auth"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2cache"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkV2Member is the shim's whole v2 keys path, wired as in
// cmd/etcdshim (credentials, legacy tracker, v2 HTTP metrics), against an
// etcd 3.7 process: the member's allocations are not counted, so allocs/op
// is the shim's own per-request cost.
func BenchmarkV2Member(b *testing.B) {
	pool := harness.StartMemberPool(b, "3.7")
	reg := prometheus.NewRegistry()
	tokens := v2auth.NewTokens(pool, "", "", 0)
	store := v2store.NewV3(pool.ClientConn(), "")
	keys := New(Options{Credentials: tokens, Legacy: metricsalias.NewLegacyTracker(1000, reg)}, store)
	h := metricsalias.NewV2HTTPMetrics(reg).Wrap(keys)
	if _, _, err := keys.store.Put(context.Background(), "/bench/k", v2store.SetOptions{Value: "x"}); err != nil {
		b.Fatal(err)
	}
	// A read cache as cmd/etcdshim wires it, used by get-cached only.
	follower := v2follow.New(v2follow.Options{}, pool)
	cache := v2cache.New(v2cache.Options{MaxBytes: 1 << 20}, pool.ClientConn(), follower)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = follower.Run(ctx) }()
	go func() { _ = cache.Run(ctx) }()
	cached := metricsalias.NewV2HTTPMetrics(prometheus.NewRegistry()).Wrap(
		New(Options{Credentials: tokens, Legacy: metricsalias.NewLegacyTracker(1000, prometheus.NewRegistry())},
			v2store.NewV3(pool.ClientConn(), "").WithReadCache(cache)))
	waitServing(b, cache)
	// The -c50 variants run 50 concurrent requests, as the live benchmark
	// does: one cache barrier then serves many reads.
	for _, c := range []struct {
		name, method, form string
		h                  http.Handler
		parallel           bool
	}{
		{"get", http.MethodGet, "", h, false},
		{"get-cached", http.MethodGet, "", cached, false},
		{"get-c50", http.MethodGet, "", h, true},
		{"get-cached-c50", http.MethodGet, "", cached, true},
		{"put", http.MethodPut, "value=x", h, false},
		{"cas", http.MethodPut, "value=x&prevValue=x", h, false},
	} {
		serve := func(b *testing.B) {
			r := httptest.NewRequest(c.method, "/v2/keys/bench/k", strings.NewReader(c.form))
			if c.form != "" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			r.RemoteAddr = "127.0.0.1:40000"
			rec := httptest.NewRecorder()
			c.h.ServeHTTP(rec, r)
			if rec.Code >= 300 {
				b.Errorf("%s: %d %s", c.name, rec.Code, rec.Body)
			}
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			if !c.parallel {
				for b.Loop() {
					serve(b)
				}
				return
			}
			b.SetParallelism((50 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serve(b)
				}
			})
		})
	}
}

// waitServing reads through the cache until it answers (its first read
// starts it).
func waitServing(b *testing.B, c *v2cache.Cache) {
	b.Helper()
	for range 500 {
		if _, ok := c.Acquire(context.Background()); ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("the read cache never served")
}
