// Package testnet serves raw connections to tests: the accept loop that
// test servers below HTTP and gRPC (a TLS echo, a bare TCP relay) share.
// Nothing in the shim imports it.
package testnet
