// Package proxy is the shim's network front: it owns the client listeners,
// splits each connection into gRPC or HTTP, relays gRPC to an upstream member
// as an HTTP/2 byte tunnel, and routes HTTP requests to the components that
// answer them or to the member itself. The members themselves (which one
// requests go to, failover, drains) are package upstream's business; the
// front asks its Pool and never the reverse.
//
// gRPC is relayed without decoding messages: the tunnel only walks HTTP/2
// frame headers and decodes request header blocks (HPACK) to learn each
// stream's method. That keeps the cost close to a bare TCP splice while still
// letting a graceful shutdown tell unary calls, which it lets finish, from
// long-lived streams, which it ends with a gRPC Unavailable status.
package proxy
