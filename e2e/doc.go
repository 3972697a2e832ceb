// Package e2e holds the end-to-end tests: real etcd members (Debian's 3.4.23
// and 3.5/3.6/3.7 built from the Go module proxy), the shim binary, and real
// clients (etcdctl, clientv3, client/v2, python-etcd, Prometheus), all on
// 127.0.0.1 with free ports. They are skipped with -short.
package e2e
