package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/metricsalias"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// BenchmarkServe is the shim's /v3beta path, wired as in cmd/etcdshim,
// against an etcd 3.7 process: the member's allocations are not counted, so
// allocs/op is the shim's own per-request cost.
func BenchmarkServe(b *testing.B) {
	pool := harness.StartMemberPool(b, "3.7")
	reg := prometheus.NewRegistry()
	g, err := New(Options{LegacyPrefixes: []string{"/v3beta", "/v3alpha"}, LegacyMode: "rewrite", MaxRequestBytes: 3 << 20,
		Registerer: reg, Legacy: metricsalias.NewLegacyTracker(1000, reg)}, pool.ClientConn())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := etcdrpc.NewKVClient(pool.ClientConn()).Put(context.Background(), &pb.PutRequest{Key: []byte("foo"), Value: []byte("bar")}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, path, body string }{
		{"range", "/v3beta/kv/range", `{"key":"Zm9v"}`},
		{"put", "/v3beta/kv/put", `{"key":"Z3A=","value":"dg=="}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body))
				r.RemoteAddr = "127.0.0.1:40000"
				rec := httptest.NewRecorder()
				g.ServeHTTP(rec, r)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", c.name, rec.Code, rec.Body)
				}
			}
		})
	}
}
