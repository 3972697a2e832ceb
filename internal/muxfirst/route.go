package muxfirst

import (
	"net/http"
	"path"
	"strings"
)

// Route sends the requests mux would send to its pattern prefix (ending in
// "/") straight to h, and the others to mux. Only clean paths go to h
// directly (the mux redirects the others), and no CONNECT (the mux matches
// it by host). mux must route nothing more specific below prefix
// elsewhere.
func Route(prefix string, h, mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			if p := r.URL.EscapedPath(); strings.HasPrefix(p, prefix) && Clean(p) {
				h.ServeHTTP(w, r)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// Clean reports whether a ServeMux would serve the path p as it is rather
// than redirect to its cleaned form (path.Clean, keeping a trailing slash).
func Clean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}
