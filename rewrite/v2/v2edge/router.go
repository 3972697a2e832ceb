package v2edge

import (
	"net/http"
	"strings"
)

// Route is one method of a resource and the function that serves it. F is
// the resource's own signature (what its functions need besides the
// request, and what they return).
type Route[F any] struct {
	Method string
	Serve  F
}

// On pairs a method with the function that serves it.
func On[F any](method string, serve F) Route[F] { return Route[F]{Method: method, Serve: serve} }

// Router picks the function that serves a request's method on one
// resource.
type Router[F any] struct {
	routes []Route[F]
	allow  string
}

// NewRouter returns the router of routes; 405 answers list their methods
// in Allow in the order given, as 3.4's do.
func NewRouter[F any](routes ...Route[F]) *Router[F] {
	methods := make([]string, len(routes))
	for i, rt := range routes {
		methods[i] = rt.Method
	}
	return &Router[F]{routes: routes, allow: strings.Join(methods, ",")}
}

// Find returns the function serving r's method. For any other method it
// answers as 3.4's allowMethod does (405, Allow listing the methods) and
// returns false.
func (rt *Router[F]) Find(w http.ResponseWriter, r *http.Request) (F, bool) {
	for _, route := range rt.routes {
		if route.Method == r.Method {
			return route.Serve, true
		}
	}
	w.Header().Set("Allow", rt.allow)
	MethodNotAllowed(w)
	var none F
	return none, false
}

// MethodNotAllowed answers 405 in 3.4's plain text. Alone (without the
// Allow a Router sets) it is 3.4's answer to a member update or removal
// that names no member.
func MethodNotAllowed(w http.ResponseWriter) {
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
}
