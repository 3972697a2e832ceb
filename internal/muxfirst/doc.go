// Package muxfirst sends the requests a ServeMux would route to one busy
// pattern straight to its handler: the mux's pattern matching allocates a
// few times per request (a match slice per path segment, a trailing-slash
// retry). The shim's router uses it for /v2/, the v2 routes for
// /v2/keys/.
package muxfirst
