package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCanonicalPaths(t *testing.T) {
	served := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := canonicalPaths(served)
	for _, tc := range []struct {
		target   string
		code     int
		location string
	}{
		{"/v2/keys/a", http.StatusTeapot, ""},
		{"/v2/keys/a/", http.StatusTeapot, ""},
		{"/v2/keys/a?recursive=true", http.StatusTeapot, ""},
		{"/v2/keys/a%20b", http.StatusTeapot, ""},
		{"/v2/keys/a/../b", http.StatusMovedPermanently, "/v2/keys/b"},
		{"/v2/keys//b", http.StatusMovedPermanently, "/v2/keys/b"},
		{"/v2/keys/b/.", http.StatusMovedPermanently, "/v2/keys/b"},
		{"/v2/keys/a/%2e%2e/b?wait=true", http.StatusMovedPermanently, "/v2/keys/b?wait=true"},
		{"/v2/keys/a%2F..%2Fb", http.StatusMovedPermanently, "/v2/keys/b"},
		{"/v2/keys/b/%2E", http.StatusMovedPermanently, "/v2/keys/b"},
		{"/v2/keys/x/../../../etc/", http.StatusMovedPermanently, "/etc/"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, tc.target, nil))
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d", rec.Code, tc.code)
			}
			if got := rec.Header().Get("Location"); got != tc.location {
				t.Fatalf("Location %q, want %q", got, tc.location)
			}
		})
	}
}
