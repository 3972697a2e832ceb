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
// What it requires, over at least 40,000 requests through the shims:
//
//   - zero failed requests for every client the shim answers itself: v2
//     writer, CAS, in-order POST, TTL refresh, plain and quorum readers,
//     watcher, /v3beta, metrics scrape;
//   - for the v3 gRPC client, whose calls the shim relays untouched, zero
//     failures other than a member's answer to a write raft dropped during a
//     drain's MoveLeader: while a transfer is under way the old leader
//     refuses every proposal ("raft proposal dropped" to its own clients,
//     silence to a forwarding member, which answers "request timed out").
//     etcd does this to any v3 client: a control client with the same
//     workload, straight to the members, runs beside it and its failures are
//     reported next to the shim client's (it also loses the writes in flight
//     on a member that stops, which the drains spare the shim's clients);
//   - every acknowledged write read back, the v2 register history
//     linearizable (porcupine), chained v2 watchers seeing every
//     acknowledged index.
//
// TestLeaderTransferFloor (build tag bench) measures that floor on a plain
// 3.7 cluster: many transfers under write load, writers straight to each
// member and through each member's shim, failures by the role of the member
// written to and by kind; its latest result is report-transfer.md.
// TestPrestopWithAuth checks the drain's leader move with auth on.
//
//	go test ./e2e/upgrade/                  # CI-sized (about 5 minutes); writes the git-ignored report-ci.md
//	UPGRADE_FULL=1 go test ./e2e/upgrade/   # longer between steps; writes report-latest.md
//	UPGRADE_LOGS=/some/dir go test ...      # also keeps the three shims' logs there
//	go test -tags bench -run TestLeaderTransferFloor ./e2e/upgrade/   # writes report-transfer.md
package upgrade
