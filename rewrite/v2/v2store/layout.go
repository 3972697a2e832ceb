package v2store

import (
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// layout maps v2 paths onto v3 keys under a prefix. With a scope it leaves
// out the compares and operations the caller may not send (scope.go).
type layout struct {
	prefix string
	scope  Scope
}

// key is the v3 key of a v2 file node.
func (l layout) key(p string) []byte { return []byte(l.prefix + p) }

// marker is the v3 key that makes p a directory.
func (l layout) marker(p string) []byte {
	if p == "/" {
		return []byte(l.prefix + "/")
	}
	return []byte(l.prefix + p + "/")
}

// subtree is the v3 range holding everything below directory p.
func (l layout) subtree(p string) (start, end []byte) {
	start = l.marker(p)
	return start, prefixEnd(start)
}

// Keyspace is the v3 range [start, end) holding the whole v2 keyspace under
// prefix: what the watch hub and the read cache follow.
func Keyspace(prefix string) (start, end []byte) { return layout{prefix: prefix}.subtree("/") }

// v2Path turns a v3 key back into a v2 path.
func (l layout) v2Path(k []byte) string { return strings.TrimPrefix(string(k), l.prefix) }

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

// ancestors lists p's parent directories below the root, top down:
// "/a/b/c" → "/a", "/a/b".
func ancestors(p string) []string {
	var out []string
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

// Compares and requests the transactions are built from.

func versionIs(key, end []byte, v int64) *pb.Compare {
	return &pb.Compare{Key: key, RangeEnd: end, Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL,
		TargetUnion: &pb.Compare_Version{Version: v}}
}

// notFile holds when no v3 key p exists.
func (l layout) notFile(p string) *pb.Compare { return versionIs(l.key(p), nil, 0) }

// noFileAbove holds when none of p's parent directories is a file.
func (l layout) noFileAbove(p string) []*pb.Compare {
	var cmp []*pb.Compare
	for _, a := range ancestors(p) {
		if !l.canRead(l.key(a), nil) {
			continue // above the caller's grant (scope.go)
		}
		cmp = append(cmp, l.notFile(a))
	}
	return cmp
}

// parentsNoFile is noFileAbove for a write's own compares: nothing for a
// deep key, whose write checks its parents another way (deep.go).
func (l layout) parentsNoFile(p string) []*pb.Compare {
	if deep(p) {
		return nil
	}
	return l.noFileAbove(p)
}

// exists holds when the v3 key exists.
func exists(key []byte) *pb.Compare {
	return &pb.Compare{Key: key, Target: pb.Compare_VERSION, Result: pb.Compare_GREATER,
		TargetUnion: &pb.Compare_Version{Version: 0}}
}

// isFile holds when the v3 key p exists.
func (l layout) isFile(p string) *pb.Compare { return exists(l.key(p)) }

// notDir holds when nothing exists below p: an empty range compares as a
// key of version 0.
func (l layout) notDir(p string) *pb.Compare {
	s, e := l.subtree(p)
	return versionIs(s, e, 0)
}

// isDir holds when something exists below p: every key in a non-empty
// range has a create revision above 0, an empty range does not.
func (l layout) isDir(p string) *pb.Compare {
	s, e := l.subtree(p)
	return &pb.Compare{Key: s, RangeEnd: e, Target: pb.Compare_CREATE, Result: pb.Compare_GREATER,
		TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 0}}
}

// emptyDir holds when nothing but p's marker and p's record exist below p.
func (l layout) emptyDir(p string) []*pb.Compare {
	s, e := l.subtree(p)
	rec := l.record(p)
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

// markerOps creates the markers of p's missing parent directories, each only
// if absent, inside the write's transaction.
func (l layout) markerOps(p string) []*pb.RequestOp {
	var ops []*pb.RequestOp
	for _, a := range ancestors(p) {
		m := l.marker(a)
		if !l.canRead(m, nil) || !l.canWrite(m) {
			continue // above the caller's grant: the directory exists by its children
		}
		ops = append(ops, opTxn([]*pb.Compare{versionIs(m, nil, 0)}, []*pb.RequestOp{opPut(m, "", 0)}, nil))
	}
	return ops
}

// markersExist holds when every directory in dirs has its marker.
func (l layout) markersExist(dirs []string) []*pb.Compare {
	cmp := make([]*pb.Compare, 0, len(dirs))
	for _, d := range dirs {
		if m := l.marker(d); l.canRead(m, nil) {
			cmp = append(cmp, exists(m))
		}
	}
	return cmp
}

// probeOps read, in a failed transaction's else branch, what names the
// error: each ancestor (as a file and as a directory), whether p is a
// directory, and p itself.
// A read the caller may not make is left out (readProbe knows which).
func (l layout) probeOps(p string) []*pb.RequestOp {
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
func (l layout) probePlan(p string) []probeRead {
	anc := ancestors(p)
	plan := make([]probeRead, 0, 2*len(anc)+2)
	add := func(r probeRead) {
		if l.canRead(r.key, r.end) {
			plan = append(plan, r)
		}
	}
	for i, a := range anc {
		s, e := l.subtree(a)
		add(probeRead{anc: i, key: l.key(a)})
		add(probeRead{anc: i, dir: true, key: s, end: e})
	}
	s, e := l.subtree(p)
	add(probeRead{anc: -1, dir: true, key: s, end: e})
	add(probeRead{anc: -1, key: l.key(p)})
	return plan
}

// ActionRefresh marks a refresh, which must not wake v2 watchers.
const ActionRefresh = "refresh"

// ActionExpireSubtree marks the removal of an expired directory's contents;
// watchers already saw the directory's expire event.
const ActionExpireSubtree = "expire-subtree"

// actionOp records a write to p in p's directory record (scope.go); when
// the caller may not write the record it holds the place with an empty op.
func (l layout) actionOp(p, action string) *pb.RequestOp {
	rec := l.record(ParentDir(p))
	if !l.canWrite(rec) {
		return &emptyOp().op
	}
	o := &putOp{r: pb.PutRequest{Key: rec, Value: bytesOf(action)}}
	o.w.RequestPut, o.op.Request = &o.r, &o.w
	return &o.op
}

// ExpireSubtreeRequest removes what is left below directory p after its
// marker's lease expired (3.4 expires a directory with its subtree). It is a
// no-op when nothing is left, so every shim may issue it.
func ExpireSubtreeRequest(prefix, p string) *pb.TxnRequest {
	l := layout{prefix: prefix}
	s, e := l.subtree(p)
	return &pb.TxnRequest{
		Compare: []*pb.Compare{l.isDir(p)},
		Success: []*pb.RequestOp{opDelete(s, e), l.actionOp(p, ActionExpireSubtree)},
	}
}
