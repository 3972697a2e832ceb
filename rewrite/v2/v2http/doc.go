// Package v2http serves etcd 3.4's /v2/keys over a v2store.Store: request
// parsing with 3.4's parameter rules and error codes, one function per
// method's store call, and response encoding byte for byte (one JSON line
// and a newline, omitted empty fields). The headers, the 405 answer, the
// mapping of store errors to v2 errors and the limits come from v2edge,
// which the auth and cluster handlers share.
package v2http
