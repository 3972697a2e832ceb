// Package upgrade is the rolling-upgrade scenario: a three-member etcd 3.4.23
// cluster, one etcdshim sidecar per member, legacy clients running through
// the shims the whole time, and the members upgraded one at a time as the
// upgrade notes prescribe (3.4 → 3.5 → 3.6 → 3.7, followers first, leader
// last, a snapshot from the leader before each round). It checks that no
// acknowledged write is lost, that the v2 register history is linearizable
// (porcupine), that chained v2 watchers see every acknowledged index, and
// writes report-latest.md with what each client type saw.
//
//	go test ./e2e/upgrade/                  # the CI-sized run (about a minute per round)
//	UPGRADE_FULL=1 go test ./e2e/upgrade/   # longer, with more load between steps
package upgrade
