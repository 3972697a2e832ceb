package v2store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Deep keys. A write's single transaction names every parent directory a
// few times (a compare that it is no file, a nested create of its marker,
// two probe reads), which etcd's --max-txn-ops (128 by default, counted
// along each chain of nested transactions) refuses beyond about sixty
// parents, and whose size grows with the square of the depth. Keys deeper
// than shallowAncestors take another path, linear in the key's length:
//
//  1. find, by binary search at one revision, the deepest parent that
//     exists (a directory has keys below it, and every parent of an
//     existing directory exists) and one key K below it;
//  2. write in one transaction guarded by "K is unchanged" (so that
//     parent still exists, and by the layout's rule that no file sits
//     above an existing key no parent above it is a file) and "the next
//     parent down is still no directory"; a nested transaction holds the
//     write's own compares and "the next parent is no file", and makes the
//     missing markers in groups that fit the nesting budget;
//  3. when the guard failed something moved meanwhile: start again; when
//     the write's own compares failed, read what names the error at the
//     failed transaction's revision, in chunks.
//
// Each attempt is one atomic transaction, as the shallow path is.

// shallowAncestors is the most parents a key may have for the one-
// transaction path: its else branch reads two keys per parent, and a
// nested marker transaction needs room below the top transaction's lists.
const shallowAncestors = 48

// opsPerGroup is how many operations go in one nested group: etcd gives a
// nested transaction what the transactions above it left of --max-txn-ops,
// so groups stay well below 128.
const opsPerGroup = 64

// deepAttempts bounds the tries of a deep write whose parents keep changing.
const deepAttempts = 5

// MaxAncestorBytes bounds the summed length of a key's parent paths: the
// write transaction names each parent's marker twice, and must stay under
// etcd's default --max-request-bytes (1.5 MiB).
const MaxAncestorBytes = 512 << 10

// AncestorBytes is the summed length of p's parent paths, what a deep
// write's transaction grows with.
func AncestorBytes(p string) int {
	n := 0
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			n += i
		}
	}
	return n
}

func deep(p string) bool { return ancestorCount(p) > shallowAncestors }

// ancestorCount is len(Ancestors(p)) without building the list.
func ancestorCount(p string) int {
	if p == "" {
		return 0
	}
	return strings.Count(p[1:], "/")
}

// errParentsMoving ends a deep write whose parents changed at every try.
var errParentsMoving = errors.New("the key's parent directories kept changing; try again")

// boundary is what step 1 found: anc[k] is the deepest existing parent
// (k = -1: none but the root), witness a key below it and its revision.
type boundary struct {
	k        int
	witness  []byte
	modRev   int64
	revision int64
}

// findBoundary binary-searches the deepest existing parent of p at one
// revision. Parents the caller may not read are taken to exist (as
// readProbe takes them).
func (s *V3Store) findBoundary(ctx context.Context, anc []string) (boundary, error) {
	b := boundary{k: -1}
	lo := 0 // parents below lo are known to exist (or unreadable)
	for lo < len(anc) {
		st, e := s.l.Subtree(anc[lo])
		if s.l.canRead(st, e) {
			break
		}
		b.k = lo
		lo++
	}
	hi := len(anc) - 1
	for lo <= hi {
		mid := (lo + hi) / 2
		st, e := s.l.Subtree(anc[mid])
		r, err := s.kv.Range(ctx, &pb.RangeRequest{Key: st, RangeEnd: e, Limit: 1, KeysOnly: true, Revision: b.revision})
		if err != nil {
			return b, fmt.Errorf("range %s: %w", anc[mid], err)
		}
		if b.revision == 0 {
			b.revision = r.Header.Revision
		}
		if len(r.Kvs) > 0 {
			b.k, b.witness, b.modRev = mid, r.Kvs[0].Key, r.Kvs[0].ModRevision
			lo = mid + 1
		} else {
			hi = mid - 1
		}
	}
	return b, nil
}

// groupOps packs ops into nested transactions of at most opsPerGroup each.
func groupOps(ops []*pb.RequestOp) []*pb.RequestOp {
	if len(ops) <= opsPerGroup {
		return ops
	}
	var out []*pb.RequestOp
	for len(ops) > 0 {
		n := min(len(ops), opsPerGroup)
		out = append(out, opTxn(nil, ops[:n], nil))
		ops = ops[n:]
	}
	return out
}

// txnDeep is txnUnder for a deep p: own are the write's compares without
// the per-parent ones, ops its operations (not the markers). It answers as
// the one-transaction path would: on success the write's responses last,
// on failure the probe reads last.
func (s *V3Store) txnDeep(ctx context.Context, what label, p string, own []*pb.Compare, ops []*pb.RequestOp) (*pb.TxnResponse, error) {
	anc := Ancestors(p)
	markers := groupOps(s.l.MarkerOps(p))
	for attempt := 0; attempt < deepAttempts; attempt++ {
		b, err := s.findBoundary(ctx, anc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		var guard []*pb.Compare
		if b.witness != nil {
			guard = append(guard, &pb.Compare{Key: b.witness, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
				TargetUnion: &pb.Compare_ModRevision{ModRevision: b.modRev}})
		}
		inner := own[:len(own):len(own)]
		if next := b.k + 1; next < len(anc) {
			guard = append(guard, s.l.NotDir(anc[next]))
			inner = append(inner, s.l.NotFile(anc[next]))
		}
		then := append(markers[:len(markers):len(markers)], ops...)
		resp, err := s.txn(ctx, what, guard, []*pb.RequestOp{opTxn(inner, then, nil)}, nil)
		if err != nil {
			return nil, err
		}
		if !resp.Succeeded {
			continue // a parent appeared or vanished since the search
		}
		in := resp.Responses[0].GetResponseTxn()
		if in.Succeeded {
			return &pb.TxnResponse{Header: resp.Header, Succeeded: true, Responses: in.Responses}, nil
		}
		probes, err := s.probeAt(ctx, p, resp.Header.Revision)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return &pb.TxnResponse{Header: resp.Header, Responses: probes}, nil
	}
	return nil, fmt.Errorf("%s: %w", what, errParentsMoving)
}

// txnThenProbe is txn for a deep in-place write: no probe reads in the
// else branch (they would pass --max-txn-ops), read after a failure at the
// failed transaction's revision instead, which sees what it saw.
func (s *V3Store) txnThenProbe(ctx context.Context, what label, p string, cmp []*pb.Compare, then []*pb.RequestOp) (*pb.TxnResponse, error) {
	resp, err := s.txn(ctx, what, cmp, then, nil)
	if err != nil || resp.Succeeded {
		return resp, err
	}
	probes, err := s.probeAt(ctx, p, resp.Header.Revision)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	resp.Responses = probes
	return resp, nil
}

// probeAt runs probeOps(p) at revision rev, in read-only transactions of at
// most opsPerGroup reads, and returns their responses in order.
func (s *V3Store) probeAt(ctx context.Context, p string, rev int64) ([]*pb.ResponseOp, error) {
	ops := s.l.probeOps(p)
	for _, op := range ops {
		op.GetRequestRange().Revision = rev
	}
	out := make([]*pb.ResponseOp, 0, len(ops))
	for len(ops) > 0 {
		n := min(len(ops), opsPerGroup)
		r, err := s.kv.Txn(ctx, &pb.TxnRequest{Success: ops[:n]})
		if err != nil {
			return nil, err
		}
		out = append(out, r.Responses...)
		ops = ops[n:]
	}
	return out, nil
}
