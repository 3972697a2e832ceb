package v2http

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/metricsalias"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2auth"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkV2Member is the shim's whole v2 keys path, wired as in
// cmd/etcdshim (credentials, legacy tracker, v2 HTTP metrics), against an
// etcd 3.7 process: the member's allocations are not counted, so allocs/op
// is the shim's own per-request cost.
func BenchmarkV2Member(b *testing.B) {
	if testing.Short() {
		b.Skip("starts an etcd process")
	}
	pool := harness.StartMemberPool(b, "3.7")
	reg := prometheus.NewRegistry()
	tokens := v2auth.NewTokens(pool, "", "", 0)
	keys := New(Options{Credentials: tokens, Legacy: metricsalias.NewLegacyTracker(1000, reg)},
		v2store.NewV3(pool.ClientConn(), ""))
	h := metricsalias.NewV2HTTPMetrics(reg).Wrap(keys)
	if _, _, err := keys.store.Put(context.Background(), "/bench/k", v2store.SetOptions{Value: "x"}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, method, form string }{
		{"get", http.MethodGet, ""},
		{"put", http.MethodPut, "value=x"},
		{"cas", http.MethodPut, "value=x&prevValue=x"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(c.method, "/v2/keys/bench/k", strings.NewReader(c.form))
				if c.form != "" {
					r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				r.RemoteAddr = "127.0.0.1:40000"
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code >= 300 {
					b.Fatalf("%s: %d %s", c.name, rec.Code, rec.Body)
				}
			}
		})
	}
}
