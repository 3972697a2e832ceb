package v2store

import (
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// layout maps v2 paths onto v3 keys under a prefix.
type layout struct{ prefix string }

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
		cmp = append(cmp, l.notFile(a))
	}
	return cmp
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

// emptyDir holds when nothing but p's marker exists below p.
func (l layout) emptyDir(p string) *pb.Compare {
	s, e := l.subtree(p)
	return versionIs(append(append([]byte(nil), s...), 0), e, 0)
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
		ops = append(ops, opTxn([]*pb.Compare{versionIs(m, nil, 0)}, []*pb.RequestOp{opPut(m, "", 0)}, nil))
	}
	return ops
}

// markersExist holds when every directory in dirs has its marker.
func (l layout) markersExist(dirs []string) []*pb.Compare {
	cmp := make([]*pb.Compare, len(dirs))
	for i, d := range dirs {
		cmp[i] = exists(l.marker(d))
	}
	return cmp
}

// probeOps read, in a failed transaction's else branch, what names the
// error: each ancestor (as a file and as a directory), whether p is a
// directory, and p itself.
func (l layout) probeOps(p string) []*pb.RequestOp {
	ops := make([]*pb.RequestOp, 0, 2*strings.Count(p, "/")+2)
	for _, a := range ancestors(p) {
		s, e := l.subtree(a)
		ops = append(ops, opGet(l.key(a)), opAny(s, e))
	}
	s, e := l.subtree(p)
	return append(ops, opAny(s, e), opGet(l.key(p)))
}

// ActionKey is the v2 path of the key every v2 write also puts, in the same
// transaction, with its v2 action as value. Watchers read it to tell set
// from create, update or compareAndSwap, and an explicit delete from an
// expiry (a delete revision without it). It is hidden from v2 listings (its
// name starts with "_").
const ActionKey = "/_etcdshim_action"

// ActionRefresh marks a refresh, which must not wake v2 watchers.
const ActionRefresh = "refresh"

// ActionExpireSubtree marks the removal of an expired directory's contents;
// watchers already saw the directory's expire event.
const ActionExpireSubtree = "expire-subtree"

func (l layout) actionOp(action string) *pb.RequestOp {
	o := &putOp{r: pb.PutRequest{Key: l.key(ActionKey), Value: bytesOf(action)}}
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
		Success: []*pb.RequestOp{opDelete(s, e), l.actionOp(ActionExpireSubtree)},
	}
}
