// Command etcdshim is a sidecar that lets etcd clusters be upgraded while
// their clients are not: it takes the client port in front of an upgraded
// member, passes v3 gRPC through, serves the legacy JSON gateway prefixes and
// the v2 API from v3, and re-exports renamed metrics under their old names.
//
// Run `etcdshim --help` for the flags, or see the README.
package main
