// Package etcdtest serves package tests a v3 API without a separate
// process (e2e/harness starts those): Start runs an in-process etcd, skipped
// under -short; Mem answers reads from memory, for unit tests of code that
// only reads the keyspace, and runs in make unit; ServeGRPC serves a fake
// member's services; Upstream passes a connection where a package takes its
// upstream pool; Metric reads one series from a registry.
package etcdtest
