// Package gateway is the shim's own JSON gateway: etcd's generated
// grpc-gateway handlers, served under /v3 and the legacy prefixes /v3beta
// (3.3–3.4 clients) and /v3alpha (3.2 clients), calling the upstream member's
// gRPC API directly (no second hop through the member's own gateway).
//
// Output is what 3.4 clients parse, whatever release the member runs: proto
// field names (create_revision), int64 as strings, zero values omitted, and
// compact JSON (protojson deliberately varies its whitespace; the marshaler
// compacts it). Errors on the legacy prefixes use 3.4's shape
// {"error","message","code"} and grpc-gateway v1's status mapping
// (FailedPrecondition is 412); /v3 answers in the gateway's current shape.
//
// Watches (and any other route) are served over websockets too, with the
// library etcd's own gateway uses (websocket.go); each client message is
// bounded by --max-request-bytes before its payload is read (wslimit.go).
package gateway
