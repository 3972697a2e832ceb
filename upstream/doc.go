// Package upstream is the shim's client of the etcd members: a Pool of
// connections to the configured members in order of preference, probed with
// the gRPC health service, that sends requests to the first healthy one (the
// sidecar's own member as soon as it recovers) and moves what it has on a
// member off it when it leaves it (failback, a planned drain).
//
// The shim's own components call members through Pool.ClientConn, a picker
// that retries a call on another member only when that is safe (picker.go);
// the front relays client connections as bytes (Pool.DialRelay) and the pool
// moves them through the Relay interface. This package never imports the
// front (package proxy).
package upstream
