// Package v2migrate copies the v2 keyspace of a live etcd 3.4/3.5 member
// (the v2 store, invisible to v3 clients and refused by etcd 3.6) into the
// v3 layout the shim serves v2 clients from (rewrite/v2/v2store), keeps it
// in step while clients are moved (follow), and compares the two (verify).
//
// The source is read over its own v2 HTTP API — a quorum, recursive, sorted
// GET — because that is the only consistent view of the v2 store a running
// member offers; its X-Etcd-Index is where following starts. Hidden nodes
// (names starting with "_") never appear in v2 listings, so they are read
// only below the roots the caller names (Options.Roots).
//
// Import is a plan over two snapshots, the source tree and the destination
// range: nodes already equal are skipped, the rest are written in batched
// v3 transactions whose compares refuse to write over a conflicting shape
// (a file where a directory goes, or the reverse), so a concurrent writer
// can never make the import half-write a node silently. Re-running an
// import converges: it only writes what still differs.
package v2migrate
