// Package v2watch hands out v2 watches (GET ?wait=true) as domain watchers,
// as 3.4's store does: Hub.Watch(ctx, key, options) returns a
// v2store.Watcher whose channel delivers v2 events; v2http turns them into
// long polls and streams.
//
// The Hub's history comes from the follower of the v2 keyspace
// (v2follow.Follower), whose one upstream watch it shares with the read
// cache: the hub keeps the last N v2 events in a ring (--v2-watch-history,
// 1000 as in 3.4) and fans new events out to the registered waiters. A
// watch with a waitIndex inside the ring is answered at once; one older
// than the ring gets error 401 as 3.4 answers it. When the follower's watch
// breaks it resumes from the next revision, so nothing is lost or repeated;
// if that revision was compacted, the ring is cleared and waiters behind it
// get 401.
//
// While auth keeps the follower from following the keyspace (auth on, no
// --user), a watch runs upstream as its client, with the client's own
// credentials (direct.go): one upstream watch per such client, by design.
package v2watch
