package httpguard

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPolicy(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	for _, tc := range []struct {
		name         string
		hosts, cors  []string
		method, host string
		origin       string
		code         int
		allowOrigin  string
		tls          bool
		reachesNext  bool
	}{
		{"defaults", []string{"*"}, []string{"*"}, "GET", "evil.example:2379", "https://a", 200, "*", false, true},
		{"empty lists allow all", nil, nil, "GET", "evil.example", "", 200, "*", false, true},
		{"unlisted host", []string{"localhost", "127.0.0.1"}, nil, "PUT", "evil.example:2379", "", 421, "", false, false},
		{"listed host with port", []string{"localhost", "127.0.0.1"}, nil, "PUT", "127.0.0.1:2379", "", 200, "*", false, true},
		{"unlisted host over TLS", []string{"localhost"}, nil, "PUT", "evil.example", "", 200, "*", true, true},
		{"listed origin", nil, []string{"https://a"}, "GET", "x", "https://a", 200, "https://a", false, true},
		{"unlisted origin", nil, []string{"https://a"}, "GET", "x", "https://b", 200, "", false, true},
		{"no origin", nil, []string{"https://a"}, "GET", "x", "", 200, "", false, true},
		{"preflight", nil, []string{"https://a"}, "OPTIONS", "x", "https://a", 200, "https://a", false, false},
		{"preflight of a refused host", []string{"localhost"}, nil, "OPTIONS", "evil", "", 421, "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(tc.hosts, tc.cors).WithSecure(func(*http.Request) bool { return tc.tls })
			r := httptest.NewRequest(tc.method, "/v2/keys/a", nil)
			r.Host = tc.host
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			rec := httptest.NewRecorder()
			p.Wrap(ok).ServeHTTP(rec, r)
			if rec.Code != tc.code || rec.Header().Get("Access-Control-Allow-Origin") != tc.allowOrigin || (rec.Body.String() == "ok") != tc.reachesNext {
				t.Fatalf("%d %q %q; want %d %q next=%v", rec.Code, rec.Header().Get("Access-Control-Allow-Origin"), rec.Body.String(), tc.code, tc.allowOrigin, tc.reachesNext)
			}
		})
	}
}
