// Package upgrade is the rolling-upgrade scenario: a three-member etcd 3.4.23
// cluster, one etcdshim sidecar per member, legacy clients running through
// the shims the whole time, and the members upgraded one at a time as the
// upgrade notes prescribe (3.4 → 3.5 → 3.6 → 3.7, followers first, leader
// last, a snapshot from the leader before each round). It checks that no
// acknowledged write is lost, that the v2 register history is linearizable
// (porcupine), that chained v2 watchers see every acknowledged index, and
// writes a report with what each client type saw and, for every request that
// failed, which error it got and why the shim could not hide it (a write
// that may already have applied is never sent twice; see proxy/picker.go).
//
//	go test ./e2e/upgrade/                  # CI-sized (about a minute); writes the git-ignored report-ci.md
//	UPGRADE_FULL=1 go test ./e2e/upgrade/   # longer, more load between steps; writes report-latest.md
//	UPGRADE_LOGS=/some/dir go test ...      # also keeps the three shims' logs there
package upgrade
