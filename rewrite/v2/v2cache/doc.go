// Package v2cache answers v2 GETs without quorum=true from memory, at least
// as fresh as a serializable read on the member would be.
//
// The cache holds the v2 keyspace's v3 keys (under --v2-prefix) in a
// copy-on-write B-tree: a snapshot taken with one serializable range, then
// kept current by the batches of the follower of the v2 keyspace
// (v2follow), whose one upstream watch it shares with the watch history.
// The snapshot is loaded once the follower's watch runs, at a revision at
// least as far as the follower has got, and the batches queued meanwhile
// are applied after it (their events up to the load's revision skipped). A
// gap in the follower's watch (a compaction) costs the snapshot: the cache
// loads again. Every applied batch publishes an immutable clone, so readers
// take no lock and a read's several ranges see one revision.
//
// Freshness is what makes the cache safe to put in front of clients that
// read their own writes (a v2 or v3 write through this shim, then a v2
// GET). A GET does not read the snapshot that happens to be there: it joins
// a barrier. The barrier asks the member for its current revision P (an
// anonymous count-only range, which also fails as an anonymous read would
// when auth is on) and waits until the watch has delivered everything up to
// P, asking the member for a progress notification on the watch stream when
// no event says so. GETs that arrive while a barrier is in flight share the
// next one, so under load one barrier serves many reads and neither the
// member nor the shim pays a range per GET. This is the scheme Kubernetes
// uses for consistent reads from its watch cache (KEP-2340).
//
// Requested progress notifications were not ordered with the watch's events
// before the fix of etcd issue 15220 (PR 15237, backported to 3.4 and 3.5),
// and did not reach a watch that caught up without events before the fix of
// issue 17507 (in 3.5.13), so the cache serves only while the follower's
// watch runs on a member at 3.5.13 or later (its version is read each time
// the watch is created, and every 30 s while it is too old); otherwise,
// and whenever it is not ready, the read goes to the member as before.
//
// Reads the cache cannot check go to the member too: quorum=true, requests
// with v2 credentials (the member checks their permissions), and anything
// while the barrier finds auth enabled. The cache loads with the first
// eligible GET, so a shim without v2 readers holds nothing.
package v2cache
