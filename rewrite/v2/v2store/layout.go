package v2store

import (
	"iter"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Layout maps v2 paths onto v3 keys under a prefix (the package doc gives
// the rules). It is the one definition of the layout: the store builds its
// transactions with it, and tools that read or write the v2 keyspace without
// the store (etcdshim v2 import and verify, the watch's direct path) use it
// too, so data written with it reads back through the shim exactly as if v2
// clients had written it. With a scope it leaves out the compares and
// operations the caller may not send (scope.go).
type Layout struct {
	prefix string
	scope  Scope
}

// NewLayout returns the layout under prefix ("" or "/something").
func NewLayout(prefix string) Layout { return Layout{prefix: prefix} }

// Prefix is the v3 prefix of the v2 keyspace.
func (l Layout) Prefix() string { return l.prefix }

// Key is the v3 key of the v2 file p.
func (l Layout) Key(p string) []byte { return l.keyWith(p, "", 0) }

// keyWith is the v3 key of p followed by suffix, in one allocation with
// room for extra more bytes (a write builds several keys per request).
func (l Layout) keyWith(p, suffix string, extra int) []byte {
	k := make([]byte, 0, len(l.prefix)+len(p)+len(suffix)+extra)
	return append(append(append(k, l.prefix...), p...), suffix...)
}

// Marker is the v3 key that makes p a directory (p + "/").
func (l Layout) Marker(p string) []byte { return l.markerWith(p, 0) }

// markerWith is Marker with room for extra more bytes.
func (l Layout) markerWith(p string, extra int) []byte {
	if p == "/" {
		p = ""
	}
	return l.keyWith(p, "/", extra)
}

// Subtree is the v3 range holding directory p's marker and everything below
// it. Both keys share one allocation, each capped at its length so that an
// append to one copies instead of writing into the other.
func (l Layout) Subtree(p string) (start, end []byte) {
	m := l.markerWith(p, len(l.prefix)+len(p)+1)
	n := len(m)
	m = append(m, m...)
	start, end = m[:n:n], m[n:2*n:2*n]
	// A marker ends in '/' (not 0xff): its prefix end is the marker with
	// that byte incremented, as prefixEnd computes.
	end[n-1]++
	return start, end
}

// Keyspace is the v3 range [start, end) holding the whole v2 keyspace under
// prefix: what the follower watches and the read cache holds.
func Keyspace(prefix string) (start, end []byte) { return Layout{prefix: prefix}.Subtree("/") }

// v2Path turns a v3 key back into a v2 path.
func (l Layout) v2Path(k []byte) string { return strings.TrimPrefix(string(k), l.prefix) }

// Path turns a v3 key of the layout back into a v2 path; dir reports a
// directory marker. ok is false for keys outside the prefix or that no v2
// client could name (no leading slash, empty components, a directory
// record).
func (l Layout) Path(k []byte) (p string, dir, ok bool) {
	s := string(k)
	if !strings.HasPrefix(s, l.prefix+"/") {
		return "", false, false
	}
	p, dir = l.decode(k)
	// An empty component anywhere, a trailing one included ("/a//").
	if strings.Contains(l.v2Path(k), "//") || IsRecord(k) {
		return "", false, false
	}
	return p, dir, true
}

// decode is the v2 path a v3 key under the prefix names, and whether it is
// a directory's marker (a trailing slash; the root's marker is the root).
func (l Layout) decode(k []byte) (p string, dir bool) {
	p = l.v2Path(k)
	if p == "/" {
		return p, true
	}
	if strings.HasSuffix(p, "/") {
		return p[:len(p)-1], true
	}
	return p, false
}

func prefixEnd(k []byte) []byte {
	end := append([]byte(nil), k...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// Ancestors lists p's parent directories below the root, top down:
// "/a/b/c" → "/a", "/a/b".
func Ancestors(p string) []string {
	out := make([]string, 0, ancestorCount(p))
	for a := range ancestors(p) {
		out = append(out, a)
	}
	return out
}

// ancestors yields what Ancestors lists without building the list: a
// write's compares walk p's parents on every request.
func ancestors(p string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := 1; i < len(p); i++ {
			if p[i] == '/' && !yield(p[:i]) {
				return
			}
		}
	}
}

// Compares and requests the transactions are built from.

func versionIs(key, end []byte, v int64) *pb.Compare {
	return &pb.Compare{Key: key, RangeEnd: end, Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL,
		TargetUnion: &pb.Compare_Version{Version: v}}
}

// NotFile holds when no v3 key p exists.
func (l Layout) NotFile(p string) *pb.Compare { return versionIs(l.Key(p), nil, 0) }

// NoFileAbove holds when none of p's parent directories is a file.
func (l Layout) NoFileAbove(p string) []*pb.Compare { return l.noFileAbove(nil, p) }

// noFileAbove appends NoFileAbove(p) to cmp.
func (l Layout) noFileAbove(cmp []*pb.Compare, p string) []*pb.Compare {
	for a := range ancestors(p) {
		k := l.Key(a)
		if !l.canRead(k, nil) {
			continue // above the caller's grant (scope.go)
		}
		cmp = append(cmp, versionIs(k, nil, 0))
	}
	return cmp
}

// parentsNoFile are a write's own compares: its parents are no files
// (NoFileAbove; nothing for a deep key, whose write checks its parents
// another way, deep.go), then last. The list has room for the compares
// txnUnder adds for p's parents.
func (l Layout) parentsNoFile(p string, last ...*pb.Compare) []*pb.Compare {
	n := 0
	if !deep(p) {
		n = ancestorCount(p)
	}
	cmp := make([]*pb.Compare, 0, 2*n+len(last))
	if n > 0 {
		cmp = l.noFileAbove(cmp, p)
	}
	return append(cmp, last...)
}

// exists holds when the v3 key exists.
func exists(key []byte) *pb.Compare {
	return &pb.Compare{Key: key, Target: pb.Compare_VERSION, Result: pb.Compare_GREATER,
		TargetUnion: &pb.Compare_Version{Version: 0}}
}

// isFile holds when the v3 key p exists.
func (l Layout) isFile(p string) *pb.Compare { return exists(l.Key(p)) }

// NotDir holds when nothing exists below p: an empty range compares as a
// key of version 0.
func (l Layout) NotDir(p string) *pb.Compare {
	s, e := l.Subtree(p)
	return versionIs(s, e, 0)
}

// isDir holds when something exists below p: every key in a non-empty
// range has a create revision above 0, an empty range does not.
func (l Layout) isDir(p string) *pb.Compare {
	s, e := l.Subtree(p)
	return &pb.Compare{Key: s, RangeEnd: e, Target: pb.Compare_CREATE, Result: pb.Compare_GREATER,
		TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 0}}
}

// emptyDir holds when nothing but p's marker and p's record exist below p.
func (l Layout) emptyDir(p string) []*pb.Compare {
	s, e := l.Subtree(p)
	rec := l.Record(p)
	return []*pb.Compare{versionIs(append(append([]byte(nil), s...), 0), rec, 0),
		versionIs(append(rec, 0), e, 0)}
}

// The op constructors allocate a request, its oneof wrapper and the op in
// one object: a v2 write's transaction has a dozen of them.

type putOp struct {
	op pb.RequestOp
	w  pb.RequestOp_RequestPut
	r  pb.PutRequest
}

type deleteOp struct {
	op pb.RequestOp
	w  pb.RequestOp_RequestDeleteRange
	r  pb.DeleteRangeRequest
}

type rangeOp struct {
	op pb.RequestOp
	w  pb.RequestOp_RequestRange
	r  pb.RangeRequest
}

type txnOp struct {
	op pb.RequestOp
	w  pb.RequestOp_RequestTxn
	r  pb.TxnRequest
}

// bytesOf is []byte(s), nil for "" (proto3 writes neither).
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func opPut(key []byte, value string, lease int64) *pb.RequestOp {
	o := &putOp{r: pb.PutRequest{Key: key, Value: bytesOf(value), Lease: lease, PrevKv: true}}
	o.w.RequestPut, o.op.Request = &o.r, &o.w
	return &o.op
}

func opDelete(key, end []byte) *pb.RequestOp {
	o := &deleteOp{r: pb.DeleteRangeRequest{Key: key, RangeEnd: end, PrevKv: end == nil}}
	o.w.RequestDeleteRange, o.op.Request = &o.r, &o.w
	return &o.op
}

func opGet(key []byte) *pb.RequestOp {
	o := &rangeOp{r: pb.RangeRequest{Key: key}}
	o.w.RequestRange, o.op.Request = &o.r, &o.w
	return &o.op
}

// opAny reads at most one key of a range: enough to know it is not empty.
func opAny(key, end []byte) *pb.RequestOp {
	o := &rangeOp{r: pb.RangeRequest{Key: key, RangeEnd: end, Limit: 1, KeysOnly: true}}
	o.w.RequestRange, o.op.Request = &o.r, &o.w
	return &o.op
}

func opTxn(cmp []*pb.Compare, then, els []*pb.RequestOp) *pb.RequestOp {
	o := &txnOp{r: pb.TxnRequest{Compare: cmp, Success: then, Failure: els}}
	o.w.RequestTxn, o.op.Request = &o.r, &o.w
	return &o.op
}

// MarkerOps creates the markers of p's missing parent directories, each only
// if absent, inside the write's transaction, as every v2 write does. Two
// sets of them must not share one transaction (etcd refuses a key put twice
// in a transaction).
func (l Layout) MarkerOps(p string) []*pb.RequestOp {
	var ops []*pb.RequestOp
	for a := range ancestors(p) {
		m := l.Marker(a)
		if !l.canRead(m, nil) || !l.canWrite(m) {
			continue // above the caller's grant: the directory exists by its children
		}
		ops = append(ops, opTxn([]*pb.Compare{versionIs(m, nil, 0)}, []*pb.RequestOp{opPut(m, "", 0)}, nil))
	}
	return ops
}

// markersExist holds when every directory in dirs has its marker.
func (l Layout) markersExist(dirs []string) []*pb.Compare {
	cmp := make([]*pb.Compare, 0, len(dirs))
	for _, d := range dirs {
		cmp = l.markerExists(cmp, d)
	}
	return cmp
}

// parentMarkersExist appends markersExist(Ancestors(p)) to cmp.
func (l Layout) parentMarkersExist(cmp []*pb.Compare, p string) []*pb.Compare {
	for a := range ancestors(p) {
		cmp = l.markerExists(cmp, a)
	}
	return cmp
}

func (l Layout) markerExists(cmp []*pb.Compare, d string) []*pb.Compare {
	if m := l.Marker(d); l.canRead(m, nil) {
		cmp = append(cmp, exists(m))
	}
	return cmp
}

// probeOps read, in a failed transaction's else branch, what names the
// error: each ancestor (as a file and as a directory), whether p is a
// directory, and p itself.
// A read the caller may not make is left out (readProbe knows which).
func (l Layout) probeOps(p string) []*pb.RequestOp {
	ops := make([]*pb.RequestOp, 0, 2*strings.Count(p, "/")+2)
	for _, pr := range l.probePlan(p) {
		if pr.dir {
			ops = append(ops, opAny(pr.key, pr.end))
		} else {
			ops = append(ops, opGet(pr.key))
		}
	}
	return ops
}

// probeRead is one read of probeOps: for ancestor anc (-1: p itself), its
// file key or (dir) the range below it.
type probeRead struct {
	anc      int
	dir      bool
	key, end []byte
}

// probePlan lists probeOps' reads in order: each ancestor as a file and as
// a directory, then p as a directory and as a file, without those outside
// the caller's scope.
func (l Layout) probePlan(p string) []probeRead {
	anc := Ancestors(p)
	plan := make([]probeRead, 0, 2*len(anc)+2)
	add := func(r probeRead) {
		if l.canRead(r.key, r.end) {
			plan = append(plan, r)
		}
	}
	for i, a := range anc {
		s, e := l.Subtree(a)
		add(probeRead{anc: i, key: l.Key(a)})
		add(probeRead{anc: i, dir: true, key: s, end: e})
	}
	s, e := l.Subtree(p)
	add(probeRead{anc: -1, dir: true, key: s, end: e})
	add(probeRead{anc: -1, key: l.Key(p)})
	return plan
}

// ActionRefresh marks a refresh, which must not wake v2 watchers.
const ActionRefresh = "refresh"

// ActionExpireSubtree marks the removal of an expired directory's contents;
// watchers already saw the directory's expire event.
const ActionExpireSubtree = "expire-subtree"

// ActionOp records a write to p in p's directory record (scope.go); when
// the caller may not write the record it holds the place with an empty op.
func (l Layout) ActionOp(p, action string) *pb.RequestOp {
	rec := l.Record(ParentDir(p))
	if !l.canWrite(rec) {
		return &emptyOp().op
	}
	o := &putOp{r: pb.PutRequest{Key: rec, Value: actionValue(action)}}
	o.w.RequestPut, o.op.Request = &o.r, &o.w
	return &o.op
}

// actionValues are the records' values, shared by every write's request
// (a request is only read: marshalled and sent).
var actionValues = func() map[string][]byte {
	m := map[string][]byte{}
	for _, a := range recordActions {
		m[a] = []byte(a)
	}
	return m
}()

// recordActions are the actions a v2 write records.
var recordActions = []string{ActionSet, ActionCreate, ActionUpdate, ActionCompareAndSwap, ActionDelete,
	ActionCompareAndDelete, ActionRefresh, ActionExpireSubtree}

// actionOf is the action a record's value names, without a copy for the
// actions v2 writes record.
func actionOf(v []byte) string {
	for _, a := range recordActions {
		if string(v) == a {
			return a
		}
	}
	return string(v)
}

// actionValue is the record's value for action.
func actionValue(action string) []byte {
	if v, ok := actionValues[action]; ok {
		return v
	}
	return bytesOf(action)
}

// ExpireSubtreeRequest removes what is left below directory p after its
// marker's lease expired (3.4 expires a directory with its subtree). It is a
// no-op when nothing is left, so every shim may issue it.
func ExpireSubtreeRequest(prefix, p string) *pb.TxnRequest {
	l := Layout{prefix: prefix}
	s, e := l.Subtree(p)
	return &pb.TxnRequest{
		Compare: []*pb.Compare{l.isDir(p)},
		Success: []*pb.RequestOp{opDelete(s, e), l.ActionOp(p, ActionExpireSubtree)},
	}
}
