package v2http

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// TestKeyLimits: a key past a limit gets 209 naming the limit, before
// anything is built for it; keys 500 levels deep pass.
func TestKeyLimits(t *testing.T) {
	for _, tc := range []struct {
		name, method, key string
		want              string // "" passes
	}{
		{"500 levels", "PUT", strings.Repeat("/a", 500), ""},
		{"5000 levels", "PUT", strings.Repeat("/a", 5000), "--v2-max-key-depth"},
		{"5000 levels GET", "GET", strings.Repeat("/a", 5000), "--v2-max-key-depth"},
		{"long key", "PUT", "/" + strings.Repeat("k", 100000), "--v2-max-key-bytes"},
		{"long and deep", "PUT", strings.Repeat("/"+strings.Repeat("k", 15), 500), "1.5 MiB"},
		{"wide parents", "PUT", strings.Repeat("/"+strings.Repeat("k", 31), 250), "1.5 MiB"},
		{"wide parents GET", "GET", strings.Repeat("/"+strings.Repeat("k", 31), 250), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/v2/keys/x", nil)
			r.URL.Path = "/v2/keys" + tc.key
			_, e := parseRequest(r, 1<<20, keyLimits{})
			switch {
			case tc.want == "" && e != nil:
				t.Fatalf("refused: %v", e)
			case tc.want != "" && (e == nil || e.Code != v2store.EcodeInvalidField || !strings.Contains(e.Cause, tc.want)):
				t.Fatalf("got %+v, want 209 naming %q", e, tc.want)
			}
		})
	}
}
