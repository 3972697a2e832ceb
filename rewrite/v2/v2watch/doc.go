// Package v2watch serves v2 watches (GET ?wait=true) from one upstream v3
// watch, however many v2 clients wait.
//
// The Hub keeps a single v3 watch (with previous values) on the v2 keyspace,
// turns each v3 revision into one v2 event (the revision is the v2 index),
// keeps the last N events in a ring (--v2-watch-history, 1000 as in 3.4) and
// fans new events out to the registered waiters. A long poll with a waitIndex
// inside the ring is answered at once; one older than the ring gets error 401
// as 3.4 answers it. When the upstream watch breaks it resumes from the next
// revision, so nothing is lost or repeated; if that revision was compacted,
// the ring is cleared and waiters behind it get 401.
//
// Actions come from the directory record every v2 write puts in its
// transaction (the key "<dir>/.", v2store.IsRecord); a revision without one
// is a v3 client's write (set / delete) or, for a deleted leased key, an
// expiry.
package v2watch
