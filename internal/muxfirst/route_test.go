package muxfirst

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) })
}

// TestRouteMatchesMux: every request Route sends to the handler itself, the
// mux would have sent there too, and the rest reach the mux unchanged: the
// same handler, status and redirect, for the shim's router (/v2/) and its
// v2 routes (/v2/keys/), with escaped, unclean, neighbouring and CONNECT
// paths.
func TestRouteMatchesMux(t *testing.T) {
	router, v2 := http.NewServeMux(), named("v2")
	router.Handle("/v2/", v2)
	router.Handle("/v3/", named("v3"))
	router.Handle("/version", named("version"))
	router.Handle("/", named("pass"))
	routes, keys := http.NewServeMux(), named("keys")
	routes.Handle("/v2/keys", keys)
	routes.Handle("/v2/keys/", keys)
	routes.Handle("/v2/members", named("members"))
	routes.Handle("/v2/members/", named("members"))
	routes.Handle("/v2/stats/", named("stats"))
	routes.Handle("/v2/auth/", named("auth"))
	routes.Handle("/", named("pass"))
	targets := []string{
		"/v2/keys/a", "/v2/keys/a/b?value=x", "/v2/keys/dir/", "/v2/keys/", "/v2/keys", "/v2/keysx", "/v2/", "/v2",
		"/v2x/keys", "/v2/keys/a%2Fb", "/%76%32/keys/a", "/v2/%6beys/a", "/v2/keys/%2e%2e/x", "/v2//keys", "/v2/keys//a",
		"/v2/keys/./a", "/v2/keys/a/..", "/v2/members", "/v2/auth/users", "/v2/other", "/v3/kv/range", "/version", "/",
	}
	for _, c := range []struct {
		name, prefix string
		h            http.Handler
		mux          *http.ServeMux
	}{{"router", "/v2/", v2, router}, {"v2 routes", "/v2/keys/", keys, routes}} {
		fast := Route(c.prefix, c.h, c.mux)
		for _, method := range []string{"GET", "PUT", "CONNECT"} {
			for _, target := range targets {
				serve := func(h http.Handler) *httptest.ResponseRecorder {
					r := httptest.NewRequest(method, "http://shim"+target, nil)
					if method == http.MethodConnect {
						r.URL = &url.URL{Path: strings.SplitN(target, "?", 2)[0]}
					}
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					return w
				}
				want, got := serve(c.mux), serve(fast)
				if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Location") != want.Header().Get("Location") {
					t.Errorf("%s, %s %s: Route: %d %q %q; mux: %d %q %q", c.name, method, target, got.Code, got.Body,
						got.Header().Get("Location"), want.Code, want.Body, want.Header().Get("Location"))
				}
			}
		}
	}
}

// TestClean: Clean agrees with path.Clean (keeping a trailing slash).
func TestClean(t *testing.T) {
	for p, want := range map[string]bool{"/": true, "/a": true, "/a/": true, "/a/b": true, "": false, "a": false,
		"//": false, "/a//b": false, "/./a": false, "/a/..": false, "/a/../": false, "/%2e%2e": true} {
		if got := Clean(p); got != want {
			t.Errorf("Clean(%q) = %v, want %v", p, got, want)
		}
	}
}

// BenchmarkRoute: what routing one keys request costs, through the mux and
// through Route.
func BenchmarkRoute(b *testing.B) {
	keys := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	mux := http.NewServeMux()
	mux.Handle("/v2/keys/", keys)
	mux.Handle("/v2/members", keys)
	mux.Handle("/", keys)
	r := httptest.NewRequest(http.MethodGet, "/v2/keys/bench/k", nil)
	w := httptest.NewRecorder()
	for name, h := range map[string]http.Handler{"mux": mux, "route": Route("/v2/keys/", keys, mux)} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}
