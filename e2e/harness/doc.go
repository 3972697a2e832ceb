// Package harness starts real etcd members and the shim binary for the
// end-to-end tests: Debian's etcd 3.4.23 and 3.5/3.6/3.7 built from the Go
// module proxy (cached by scripts/build-etcd.sh), all on 127.0.0.1 with free
// ports, logs in the test's temp dir (printed on failure), and every process
// stopped by t.Cleanup even when the test fails.
package harness
