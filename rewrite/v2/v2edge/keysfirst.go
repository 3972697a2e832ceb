package v2edge

import (
	"net/http"
	"path"
	"strings"
)

// KeysFirst sends what mux would send to its /v2/keys/ pattern straight to
// keys: the mux's pattern matching allocates a few times per request, and
// the keys API is the busiest v2 resource. Only clean paths go there
// directly (the mux redirects the others) and no CONNECT (the mux matches it
// by host); mux must route nothing more specific below /v2/keys/ elsewhere.
func KeysFirst(keys, mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			if p := r.URL.EscapedPath(); strings.HasPrefix(p, "/v2/keys/") && isClean(p) {
				keys.ServeHTTP(w, r)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// isClean reports whether the mux would serve p as it is rather than
// redirect to its cleaned form (path.Clean, keeping a trailing slash).
func isClean(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}
