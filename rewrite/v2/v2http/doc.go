// Package v2http serves etcd 3.4's /v2/keys over a v2store.Store: request
// parsing with 3.4's parameter rules and error codes, response encoding
// byte for byte (one JSON line and a newline, omitted empty fields), and
// the X-Etcd-Index, X-Raft-Index, X-Raft-Term and X-Etcd-Cluster-Id headers.
// Store errors are mapped to v2 errors here, at the edge.
package v2http
