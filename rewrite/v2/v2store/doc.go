// Package v2store is the v2 keyspace on v3: the Store interface the v2 HTTP
// layer calls, the v2 node/event/error types, and V3Store, which keeps v2
// data in v3 so that v2 and v3 clients share it during a migration. Layout
// is the one definition of the key layout below, Layout.Changes the one place
// v3 watch events become v2 events, and WatchOptions and Watcher the domain
// watch that v2watch hands out and v2http serves.
//
// Layout (the contract other tools rely on; see docs/v2.md):
//   - v2 key /a/b is the v3 key <prefix>/a/b;
//   - a directory exists when it has a marker or any key below it; the marker
//     is the v3 key <prefix>/a/ (trailing slash) with an empty value, and a
//     directory's TTL is its marker's lease. v2 writes create markers for every
//     missing parent in the same transaction, so directories made by v2
//     clients keep their indexes and outlive their last child, as in 3.4;
//   - createdIndex/modifiedIndex are v3 CreateRevision/ModRevision, and the
//     etcd index (X-Etcd-Index) is the response header's revision, which is
//     cluster-wide and monotonic;
//   - each TTL is a lease of its own;
//   - the directory record <prefix>/a/. holds the last v2 action in /a (set,
//     create, update, ...), written in a v2 write's transaction when the
//     writer may write it, so that watchers can name the action; no v2 path
//     can name it.
//
// Every write is one v3 transaction that checks its preconditions (no file
// on the path, target not a directory, existence, prevValue/prevIndex) and
// writes; when a check fails, the transaction's else branch reads what names
// the exact v2 error at the same revision, so there is no read-then-write
// window. A write that may create parent directories first tries without
// the nested transactions that make their markers, comparing that they
// exist; only when that try fails does the full transaction run.
//
// Explicit deletes never revoke a key's lease: they leave it to run out, so
// a watcher that sees a leased key deleted can tell an expiry (lease gone)
// from a delete (lease still alive).
package v2store
