package proxy

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// routerFor builds the client-listener router with opts and a /debug/legacy
// page, in front of an HTTP member.
func routerFor(t *testing.T, opts Options, member string) http.Handler {
	t.Helper()
	srv := idleServer(t, opts, member, Handlers{
		Legacy: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }),
		V2:     http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("v2")) }),
	})
	return srv.httpSrv.Handler
}

func do(h http.Handler, method, target, remote, host, origin string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = remote
	if host != "" {
		r.Host = host
	}
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// TestDebugPagesAccess: /debug/legacy and /debug/pprof answer loopback
// clients only by default, anyone with --debug-access=all, nobody with
// none; they never carry CORS headers; pprof's cmdline hides a password
// given as a flag.
func TestDebugPagesAccess(t *testing.T) {
	member := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer member.Close()
	for _, tc := range []struct {
		access     string
		remote     string
		wantLegacy int
	}{
		{"loopback", "127.0.0.1:4000", 200},
		{"loopback", "[::1]:4000", 200},
		{"loopback", "192.0.2.7:4000", 403},
		{"all", "192.0.2.7:4000", 200},
		{"none", "127.0.0.1:4000", 403},
	} {
		t.Run(tc.access+" "+tc.remote, func(t *testing.T) {
			cfg := testOptions()
			cfg.DebugAccess = tc.access
			cfg.EnablePprof = true
			h := routerFor(t, cfg, member.URL)
			for _, p := range []string{"/debug/legacy", "/debug/pprof/cmdline"} {
				rec := do(h, "GET", p, tc.remote, "", "https://evil.example")
				if rec.Code != tc.wantLegacy {
					t.Fatalf("%s: %d, want %d", p, rec.Code, tc.wantLegacy)
				}
				if v := rec.Header().Get("Access-Control-Allow-Origin"); v != "" {
					t.Fatalf("%s carries CORS %q", p, v)
				}
			}
		})
	}
	t.Run("cmdline", func(t *testing.T) {
		saved := os.Args
		defer func() { os.Args = saved }()
		os.Args = []string{"etcdshim", "--v2-guest-password=s3cret", "--v2-guest-user", "guest", "--v2-guest-password", "s3cret2"}
		cfg := testOptions()
		cfg.EnablePprof = true
		rec := do(routerFor(t, cfg, member.URL), "GET", "/debug/pprof/cmdline", "127.0.0.1:4000", "", "")
		if rec.Code != 200 || strings.Contains(rec.Body.String(), "s3cret") || !strings.Contains(rec.Body.String(), "guest") {
			t.Fatalf("cmdline: %d %q", rec.Code, rec.Body.String())
		}
	})
}

// TestHostAndCORSOnOwnSurfaces: a refused Host gets 421 on what the shim
// answers itself; a pass-through keeps the member's answer and its CORS
// headers; the configured origin is echoed, others get none.
func TestHostAndCORSOnOwnSurfaces(t *testing.T) {
	member := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://member.example")
		_, _ = w.Write([]byte("member"))
	}))
	defer member.Close()
	cfg := testOptions()
	cfg.HostWhitelist = []string{"localhost", "127.0.0.1"}
	cfg.CORS = []string{"https://ok.example"}
	h := routerFor(t, cfg, member.URL)
	if rec := do(h, "PUT", "/v2/keys/a", "127.0.0.1:1", "evil.example:2379", ""); rec.Code != http.StatusMisdirectedRequest {
		t.Fatalf("v2 with Host evil.example: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/health", "127.0.0.1:1", "evil.example", ""); rec.Code != http.StatusMisdirectedRequest {
		t.Fatalf("/health with Host evil.example: %d", rec.Code)
	}
	rec := do(h, "PUT", "/v2/keys/a", "127.0.0.1:1", "127.0.0.1:2379", "https://ok.example")
	if rec.Code != 200 || rec.Header().Get("Access-Control-Allow-Origin") != "https://ok.example" {
		t.Fatalf("allowed origin: %d %v", rec.Code, rec.Header())
	}
	rec = do(h, "PUT", "/v2/keys/a", "127.0.0.1:1", "127.0.0.1:2379", "https://evil.example")
	if rec.Code != 200 || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin: %d %v", rec.Code, rec.Header())
	}
	rec = do(h, "GET", "/some/member/path", "127.0.0.1:1", "127.0.0.1:2379", "https://evil.example")
	if rec.Body.String() != "member" || rec.Header().Get("Access-Control-Allow-Origin") != "https://member.example" {
		t.Fatalf("pass-through: %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
}
