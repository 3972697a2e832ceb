// Package upgrade is the rolling-upgrade scenario: a three-member etcd 3.4.23
// cluster, one etcdshim sidecar per member, legacy clients running through
// the shims the whole time, and the members upgraded one at a time by the
// procedure of README "Upgrading with etcdshim" (3.4 → 3.5 → 3.6 → 3.7, a
// snapshot from the leader before each round): each member's turn is a drain
// through its own shim's admin interface (which moves leadership away when
// the member leads and answers when nothing is in flight on it), a restart
// with the new binary, and the shim's failback; after 3.7 each member
// restarts once more. The report lists the relayed connections per member
// before and after each step.
//
// It requires zero failed requests for every client over at least 40,000
// requests, with one exception it counts and lists: a v3 write (relayed
// untouched) that raft dropped while leadership moved, which etcd answers
// with "request timed out" and which nobody may send again. It also checks
// that no acknowledged write is lost, that the v2 register history is
// linearizable (porcupine), and that chained v2 watchers see every
// acknowledged index.
//
//	go test ./e2e/upgrade/                  # CI-sized (about 4 minutes); writes the git-ignored report-ci.md
//	UPGRADE_FULL=1 go test ./e2e/upgrade/   # longer between steps; writes report-latest.md
//	UPGRADE_LOGS=/some/dir go test ...      # also keeps the three shims' logs there
package upgrade
