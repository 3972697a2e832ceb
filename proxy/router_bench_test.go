package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/etcdshim/etcdshim/upstream"
	"go.uber.org/zap"
)

// BenchmarkRouter is what the router adds to every HTTP request the shim
// answers itself (CORS, routing, instrumentation), around a no-op handler.
func BenchmarkRouter(b *testing.B) {
	u, _ := url.Parse("http://127.0.0.1:1")
	pool, err := upstream.NewPool(upstream.Options{Endpoints: []*url.URL{u}})
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	s, err := New(testOptions(), pool, Handlers{V2: ok, Gateway: ok}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{"/v2/keys/bench/k", "/v3beta/kv/range"} {
		b.Run(path, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				s.httpSrv.Handler.ServeHTTP(w, r)
			}
		})
	}
}
