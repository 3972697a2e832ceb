package v2store

import (
	"context"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Scope is what the caller of a v2 request may read and write in v3, as the
// member's role permissions say. A write or read of path p touches more than
// p's own key: the ancestors (are they files, do their markers exist), the
// directory record, the range below p. A v2 role such as {"read":["/alice/*"]}
// maps to the v3 prefix /alice/, which covers /alice/b and the markers below
// /alice but not the key /alice itself; the member refuses a whole transaction
// when any of its compares or operations falls outside the grant. With a
// Scope the store leaves out what the caller may not touch, instead of being
// refused for it (see docs/v2.md, "Auth"): a missing check of an ancestor file
// above the grant reads as "not a file", one of an ancestor's marker as
// "exists".
//
// The member still checks everything that is sent: a Scope only narrows what
// the store asks for; it never widens what a caller gets.
type Scope interface {
	// CanRead reports whether a range [key, end) (end nil: the key) may be
	// read.
	CanRead(key, end []byte) bool
	// CanWrite reports whether the key may be written.
	CanWrite(key []byte) bool
}

type scopeKey struct{}

type belowKey struct{}

// Below marks a read of a directory named with a trailing slash
// (GET /v2/keys/alice/): 3.4 checks a v2 grant against the path as written,
// so "/alice/*" allows it, and the store then reads only what lies below the
// directory, which that grant covers, not the key /alice.
func Below(ctx context.Context) context.Context { return context.WithValue(ctx, belowKey{}, true) }

func below(ctx context.Context) bool { b, _ := ctx.Value(belowKey{}).(bool); return b }

// onlyBelow reports whether a read of p must leave out p's own key: named
// with a trailing slash by a caller who may not read that key. Others read
// it as 3.4 does (GET /v2/keys/file/ answers the file).
func (l Layout) onlyBelow(ctx context.Context, p string) bool {
	return below(ctx) && !l.canRead(l.Key(p), nil)
}

// WithScope makes the store calls made with ctx stay inside sc (nil: no
// limit, for root, for auth off and for anonymous requests).
func WithScope(ctx context.Context, sc Scope) context.Context {
	if sc == nil {
		return ctx
	}
	return context.WithValue(ctx, scopeKey{}, sc)
}

func scopeOf(ctx context.Context) Scope {
	sc, _ := ctx.Value(scopeKey{}).(Scope)
	return sc
}

// scoped is s limited to the caller's scope (s itself without one).
func (s *V3Store) scoped(ctx context.Context) *V3Store {
	sc := scopeOf(ctx)
	if sc == nil {
		return s
	}
	c := *s
	c.l.scope = sc
	return &c
}

func (l Layout) canRead(key, end []byte) bool { return l.scope == nil || l.scope.CanRead(key, end) }

func (l Layout) canWrite(key []byte) bool { return l.scope == nil || l.scope.CanWrite(key) }

// The directory record.
//
// Every v2 write records its v2 action (set, create, update, compareAndSwap,
// delete, compareAndDelete, refresh, expire-subtree) for watchers, in the
// same transaction: watchers tell set from create, update or compareAndSwap,
// and an explicit delete from an expiry, by it. The record of a write to p is
// the v3 key <v2-prefix><parent of p>/. ("." as the last component), so
//   - a role that may write p's siblings (a v2 grant "/dir/*") may write it:
//     no permission beyond the grant is needed;
//   - writers in different directories touch different keys: there is no
//     one key every v2 write in the cluster updates;
//   - no v2 client can name it ("." is cleaned out of every v2 path), so it
//     is outside the v2 keyspace: never listed, read, written or watched;
//   - it lies in its directory's subtree, so it makes that directory exist
//     (like a marker, and like 3.4, where a directory stays when its last
//     child is deleted) and a recursive delete or expiry removes it with
//     the directory.
// v3 clients see it as a key ending in "/." (and markers as keys ending in
// "/"). A caller that may not write the record (a grant of single keys, or a
// key at the root without a grant on the root) writes none: watchers then
// report such a write as set, or a deletion as delete (expire for a key
// with a TTL), as for a v3 client's write.

// recordName is the last component of a directory record's key.
const recordName = "."

// Record is the v3 key of directory dir's record.
func (l Layout) Record(dir string) []byte {
	return append(l.markerWith(dir, len(recordName)), recordName...)
}

// ParentDir is the directory holding the v2 path p ("/" for the root and its
// children).
func ParentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// IsRecord reports whether a v3 key (with or without the v2 prefix) is a
// directory record, which is no v2 node.
func IsRecord(k []byte) bool {
	n := len(k)
	return n >= 2 && k[n-1] == '.' && k[n-2] == '/'
}

// emptyOp is a transaction operation that does nothing and needs no
// permission: it holds the place of an operation the caller may not send, so
// that the responses keep their positions.
func emptyOp() *txnOp {
	o := &txnOp{}
	o.w.RequestTxn, o.op.Request = &o.r, &o.w
	return o
}

// dropRecord deletes directory dir's record (with the directory), or holds
// its place when the caller may not.
func (l Layout) dropRecord(dir string) *pb.RequestOp {
	rec := l.Record(dir)
	if !l.canWrite(rec) {
		return &emptyOp().op
	}
	return opDelete(rec, nil)
}
