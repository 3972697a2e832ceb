package v2edge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestKeysFirstMatchesMux: KeysFirst sends every request where the mux of
// cmd/etcdshim's v2 routes would, with the same status, body and redirect.
func TestKeysFirstMatchesMux(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) })
	}
	keys := named("keys")
	mux := http.NewServeMux()
	mux.Handle("/v2/keys", keys)
	mux.Handle("/v2/keys/", keys)
	mux.Handle("/v2/members", named("members"))
	mux.Handle("/v2/members/", named("members"))
	mux.Handle("/v2/stats/", named("stats"))
	mux.Handle("/v2/auth/", named("auth"))
	mux.Handle("/", named("pass"))
	fast := KeysFirst(keys, mux)
	for _, c := range []struct{ method, target string }{
		{"GET", "/v2/keys/a"},
		{"PUT", "/v2/keys/a/b?value=x"},
		{"GET", "/v2/keys/dir/"},
		{"GET", "/v2/keys/"},
		{"GET", "/v2/keys"},
		{"GET", "/v2/keysx"},
		{"GET", "/v2/keys/a%2Fb"},
		{"GET", "/v2/%6beys/a"},
		{"GET", "/v2/keys/%2e%2e/x"},
		{"GET", "/v2/keys//a"},
		{"GET", "/v2/keys/./a"},
		{"GET", "/v2/keys/a/.."},
		{"GET", "/v2/members"},
		{"GET", "/v2/auth/users"},
		{"GET", "/v2/other"},
		{"CONNECT", "/v2/keys/a"},
	} {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			serve := func(h http.Handler) *httptest.ResponseRecorder {
				r := httptest.NewRequest(c.method, "http://shim"+c.target, nil)
				if c.method == http.MethodConnect {
					r.URL = &url.URL{Path: strings.SplitN(c.target, "?", 2)[0]}
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w
			}
			want, got := serve(mux), serve(fast)
			if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Location") != want.Header().Get("Location") {
				t.Fatalf("KeysFirst: %d %q %q; mux: %d %q %q", got.Code, got.Body, got.Header().Get("Location"),
					want.Code, want.Body, want.Header().Get("Location"))
			}
		})
	}
}

// BenchmarkKeysFirst: the allocations a keys request pays for routing.
func BenchmarkKeysFirst(b *testing.B) {
	keys := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	mux := http.NewServeMux()
	mux.Handle("/v2/keys/", keys)
	mux.Handle("/v2/members", keys)
	mux.Handle("/", keys)
	r := httptest.NewRequest(http.MethodGet, "/v2/keys/bench/k", nil)
	w := httptest.NewRecorder()
	for name, h := range map[string]http.Handler{"mux": mux, "keys-first": KeysFirst(keys, mux)} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}
