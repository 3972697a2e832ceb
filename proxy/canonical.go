package proxy

import (
	"net/http"
	"path"
)

// canonicalPaths answers a request whose decoded path is not canonical
// ("//", "." or ".." segments, also when percent-encoded) with 301 to the
// cleaned path, before any other handler or auth check sees it. etcd 3.4
// serves v2 and its gateway from a Go ServeMux of its day, which did exactly
// this; today's ServeMux answers 307 for the plain forms and, matching on the
// escaped path, lets "%2e%2e" through, so the v2 handler below it resolved
// "a/%2e%2e/b" to "/b" itself.
func canonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			if p := cleanPath(r.URL.Path); p != r.URL.Path {
				u := *r.URL
				u.Path, u.RawPath = p, ""
				http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is path.Clean with a leading slash, keeping a trailing one (a
// v2 GET of "/dir/" names the same node as "/dir").
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
