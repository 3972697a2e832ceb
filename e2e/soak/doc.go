// Package soak is the compressed soak of issue 19: a three-member etcd 3.7
// cluster with auth on and a short token TTL (--auth-token-ttl 3, simple
// tokens), one etcdshim per member with TLS towards clients and towards the
// members (certificates from a test CA), and every legacy client running
// through the shims the whole time: client/v2 writers and readers, etcdctl
// v2, python-etcd, Patroni's etcd DCS, v2 long-poll watchers, /v3beta JSON,
// v3 gRPC (clientv3) and Prometheus-style scrapes of the old metric names.
// The clients with credentials pause together in short quiet windows longer
// than the token TTL, so every token the clients and the shims hold expires
// over and over.
//
// During the run: a certificate rotation (each shim's serving pair, its
// upstream client pair and both CA bundles replaced on disk), one member
// restart (a follower, drained first through its shim's admin listener as
// the Kubernetes preStop hook does) and a v3 compaction to a recent revision
// with v2 long polls asking for indexes below it.
//
// What counts as a failure is each client's own verdict. Patroni (3.0.2)
// logs a v2 long poll whose response headers do not arrive within its read
// timeout (the watch's 2 s plus 0.5) as a failed request (urllib3 wraps that
// ReadTimeoutError in MaxRetryError), while one that has its headers and no
// event by then is its normal "watch timed out": so the shims must answer a
// long poll's headers without waiting on raft (a token's scope is read in
// the background) and keep its events coming when the v2 follower's token
// is refused (it renews and resumes at once). /v3beta clients authenticate
// again once when the member refuses their token, as clientv3 does; the
// repeat must succeed, also when the write goes to a leader that has not
// applied the Authenticate yet (the shim then sends it to the member that
// issued the token).
//
// It requires, per client, exactly 0 failed requests; every acknowledged
// write read back at the end; the v2 watchers to see every acknowledged
// index of what they watch; and each shim's goroutines back at their
// baseline once the clients are gone. Each shim's go_goroutines and
// process_resident_memory_bytes (its own, from /metrics/shim) are sampled
// over the run and reported as least-squares slopes after the warm-up; the
// long run asserts bounds on them.
//
//	go test ./e2e/soak/                                   # CI-sized (150 s of load, about four minutes); writes the git-ignored report-ci.md
//	SOAK_DURATION=30m go test -timeout 50m ./e2e/soak/    # the long run; writes report-30m.md (committed)
//	SOAK_LOGS=/some/dir go test ./e2e/soak/               # also keeps the three shims' logs there
package soak
