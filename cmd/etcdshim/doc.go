// Command etcdshim is a sidecar that lets etcd clusters be upgraded while
// their clients are not: it takes the client port in front of an upgraded
// member, passes v3 gRPC through, serves the legacy JSON gateway prefixes and
// the v2 API from v3, and re-exports renamed metrics under their old names.
//
// Its subcommands check a cluster before an upgrade (preflight), drain a
// running shim's member (drain) and move v2 data into v3 (v2 import, v2
// verify). wire*.go map the one Config onto each package's options and
// lifecycle.go runs the long-running components together.
//
// Run `etcdshim --help` for the flags, or see the README.
package main
