// Package v2follow follows the v2 keyspace with one upstream v3 watch and
// hands what it sees, decoded once, to the shim's consumers of it: the watch
// history of v2watch and the read cache of v2cache.
//
// The Follower reads the store index, then keeps one watch (with previous
// values, progress notifications and a leader required) on the whole v2
// prefix, as the shim's own identity (--user) when it has one. Each watch
// response becomes one Batch: the v3 events as the member sent them (the
// cache applies those to its copy of the keys) and the v2 changes they make
// (v2store.Layout.Changes, for the watch ring), plus the revision up to which
// the response proves everything delivered. Subscribers receive, in order:
//
//   - Resumed(rev, member) when a watch is created on member: every event
//     after rev follows (a subscriber that joins a running watch gets it at
//     once);
//   - Apply(batch) for each response;
//   - Broken(compacted, err) when the watch ends. The follower resumes from
//     the revision after the last one delivered, so nothing is lost or
//     repeated; if that revision was compacted, compacted is the oldest
//     revision left: events before it are gone, the ring records the gap
//     (a waitIndex before it answers 401) and the cache reloads.
//
// Watches of a client's own (v2watch's direct watches, when auth is on and
// the shim has no --user) are not the follower's: they carry the client's
// credentials, so each is an upstream watch of its own by design.
//
// The follower also removes what is left below a directory whose TTL ran
// out, once per shim, as it sees the directory expire.
package v2follow
