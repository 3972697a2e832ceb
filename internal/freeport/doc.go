// Package freeport hands out loopback TCP ports to tests that start servers
// (etcd members, shims, Prometheus) as separate processes.
//
// Listening on port 0 and closing again is racy twice over: the kernel draws
// that port from the ephemeral range, where any outgoing connection may take
// it before the server binds it, and test binaries of other packages (run in
// parallel by go test) draw from the same pool. Ports here come from below
// the ephemeral range, and each one is reserved across processes with an
// advisory lock on a file that the reserving process holds until it exits.
package freeport
