package v2store

import (
	"context"
	"fmt"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Put is set, create, update or compare-and-swap, chosen as 3.4 chooses.
func (s *V3Store) Put(ctx context.Context, p string, o SetOptions) (*Event, Meta, error) {
	s = s.scoped(ctx)
	if p == "/" {
		return rootReadOnly(ctx, s)
	}
	if o.Refresh {
		return s.refresh(ctx, p, o)
	}
	switch {
	case o.PrevExist != nil && !*o.PrevExist:
		return s.create(ctx, p, o)
	case o.PrevValue != "" || o.PrevIndex != 0:
		return s.compareAndSwap(ctx, p, o)
	case o.PrevExist != nil && *o.PrevExist:
		if o.Dir {
			return s.updateDir(ctx, p, o)
		}
		return s.update(ctx, p, o)
	case o.Dir:
		return s.setDir(ctx, p, o)
	}
	return s.set(ctx, p, o)
}

// newNode is the node a successful write made.
func (s *V3Store) newNode(p string, o SetOptions, rev int64, created int64, t ttlInfo) *Node {
	var n *Node
	if o.Dir {
		n = &Node{Key: p, Dir: true, ModifiedIndex: uint64(rev), CreatedIndex: uint64(created)}
	} else {
		n = newFileNode(p, o.Value, uint64(rev), uint64(created))
	}
	applyTTL(n, t, o.TTL != nil)
	return n
}

func prevKV(r *pb.ResponseOp) *mvccpb.KeyValue {
	if put := r.GetResponsePut(); put != nil {
		return put.PrevKv
	}
	if del := r.GetResponseDeleteRange(); del != nil && len(del.PrevKvs) > 0 {
		return del.PrevKvs[0]
	}
	return nil
}

func (s *V3Store) set(ctx context.Context, p string, o SetOptions) (*Event, Meta, error) {
	resp, t, m, err := s.write(ctx, "set", p, o.TTL, withParents, s.l.parentsNoFile(p, s.l.NotDir(p)), func(lease int64) []*pb.RequestOp {
		return []*pb.RequestOp{opPut(s.l.Key(p), o.Value, lease), s.l.ActionOp(p, ActionSet)}
	})
	if err != nil {
		return nil, m, err
	}
	if !resp.Succeeded {
		return nil, m, s.l.readProbe(p, resp.Responses, resp.Header.Revision).setError(p)
	}
	prev := prevKV(resp.Responses[len(resp.Responses)-2])
	created := resp.Header.Revision
	if prev != nil {
		// v3 keeps a key's create revision across puts (3.4's set resets it).
		created = prev.CreateRevision
	}
	return &Event{Action: ActionSet, Node: s.newNode(p, o, resp.Header.Revision, created, t), PrevNode: s.prevNode(ctx, prev)}, m, nil
}

// setDir makes p a directory, replacing a file there (3.4 does too).
func (s *V3Store) setDir(ctx context.Context, p string, o SetOptions) (*Event, Meta, error) {
	resp, t, m, err := s.write(ctx, "mkdir", p, o.TTL, withParents, s.l.parentsNoFile(p, s.l.NotDir(p)), func(lease int64) []*pb.RequestOp {
		return []*pb.RequestOp{opDelete(s.l.Key(p), nil), opPut(s.l.Marker(p), "", lease), s.l.ActionOp(p, ActionSet)}
	})
	if err != nil {
		return nil, m, err
	}
	if !resp.Succeeded {
		return nil, m, s.l.readProbe(p, resp.Responses, resp.Header.Revision).setError(p)
	}
	prev := prevKV(resp.Responses[len(resp.Responses)-3])
	return &Event{Action: ActionSet, Node: s.newNode(p, o, resp.Header.Revision, resp.Header.Revision, t), PrevNode: s.prevNode(ctx, prev)}, m, nil
}

func (s *V3Store) create(ctx context.Context, p string, o SetOptions) (*Event, Meta, error) {
	cmp := s.l.parentsNoFile(p, s.l.NotDir(p), s.l.NotFile(p))
	resp, t, m, err := s.write(ctx, "create", p, o.TTL, withParents, cmp, func(lease int64) []*pb.RequestOp {
		return s.createOps(p, o, lease)
	})
	if err != nil {
		return nil, m, err
	}
	if !resp.Succeeded {
		return nil, m, s.l.readProbe(p, resp.Responses, resp.Header.Revision).createError(p)
	}
	return &Event{Action: ActionCreate, Node: s.newNode(p, o, resp.Header.Revision, resp.Header.Revision, t)}, m, nil
}

// update replaces an existing file's value; without a ttl it clears the
// TTL, as 3.4 does.
func (s *V3Store) update(ctx context.Context, p string, o SetOptions) (*Event, Meta, error) {
	return s.swap(ctx, p, o, ActionUpdate, nil)
}

func (s *V3Store) compareAndSwap(ctx context.Context, p string, o SetOptions) (*Event, Meta, error) {
	return s.swap(ctx, p, o, ActionCompareAndSwap, s.prevCompares(p, o.PrevValue, o.PrevIndex))
}

// prevCompares are the conditions of compare-and-swap and
// compare-and-delete: the file's value, its modification index, or both.
func (s *V3Store) prevCompares(p, prevValue string, prevIndex uint64) []*pb.Compare {
	var cmp []*pb.Compare
	if prevValue != "" {
		cmp = append(cmp, &pb.Compare{Key: s.l.Key(p), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_Value{Value: []byte(prevValue)}})
	}
	if prevIndex != 0 {
		cmp = append(cmp, &pb.Compare{Key: s.l.Key(p), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_ModRevision{ModRevision: int64(prevIndex)}})
	}
	return cmp
}

// swap writes an existing file when extra compares hold (update, CAS).
func (s *V3Store) swap(ctx context.Context, p string, o SetOptions, action string, extra []*pb.Compare) (*Event, Meta, error) {
	cmp := append([]*pb.Compare{s.l.isFile(p), s.l.NotDir(p)}, extra...)
	resp, t, m, err := s.write(ctx, action, p, o.TTL, inPlace, cmp, func(lease int64) []*pb.RequestOp {
		return []*pb.RequestOp{opPut(s.l.Key(p), o.Value, lease), s.l.ActionOp(p, action)}
	})
	if err != nil {
		return nil, m, err
	}
	if !resp.Succeeded {
		return nil, m, s.l.readProbe(p, resp.Responses, resp.Header.Revision).compareFailed(p, o.PrevValue, o.PrevIndex)
	}
	prev := prevKV(resp.Responses[0])
	created := resp.Header.Revision
	if prev != nil {
		created = prev.CreateRevision
	}
	return &Event{Action: action, Node: s.newNode(p, o, resp.Header.Revision, created, t), PrevNode: s.prevNode(ctx, prev)}, m, nil
}

// compareFailCause is 3.4's cause text: the failing comparisons, value
// first, with v2 indexes (which are the v3 revisions here).
func compareFailCause(prevValue string, prevIndex uint64, cur *mvccpb.KeyValue) string {
	valueOK := prevValue == "" || string(cur.Value) == prevValue
	indexOK := prevIndex == 0 || uint64(cur.ModRevision) == prevIndex
	var parts []string
	if !valueOK {
		parts = append(parts, fmt.Sprintf("[%s != %s]", prevValue, cur.Value))
	}
	if !indexOK {
		parts = append(parts, fmt.Sprintf("[%d != %d]", prevIndex, cur.ModRevision))
	}
	return strings.Join(parts, " ")
}

// updateDir changes a directory's TTL (etcdctl updatedir).
func (s *V3Store) updateDir(ctx context.Context, p string, o SetOptions) (*Event, Meta, error) {
	resp, t, m, err := s.write(ctx, "updatedir", p, o.TTL, inPlace, []*pb.Compare{s.l.isDir(p)}, func(lease int64) []*pb.RequestOp {
		return []*pb.RequestOp{opPut(s.l.Marker(p), "", lease), s.l.ActionOp(p, ActionUpdate)}
	})
	if err != nil {
		return nil, m, err
	}
	if !resp.Succeeded {
		return nil, m, s.l.readProbe(p, resp.Responses, resp.Header.Revision).updateDirError(p)
	}
	prev := prevKV(resp.Responses[0])
	created := resp.Header.Revision
	if prev != nil {
		created = prev.CreateRevision
	}
	n := s.newNode(p, o, resp.Header.Revision, created, t)
	pn := s.prevNode(ctx, prev)
	if pn == nil {
		pn = &Node{Key: p, Dir: true}
	}
	return &Event{Action: ActionUpdate, Node: n, PrevNode: pn}, m, nil
}

// parents says whether a write's ops make p's missing parent directories.
type parents bool

const (
	withParents parents = true  // set, mkdir, create: p may be new
	inPlace     parents = false // update, CAS, updatedir: p exists already
)

// write runs one v2 write transaction: it grants the TTL's lease, builds the
// success ops for it, probes p in the else branch, and revokes the lease when
// nothing was written.
func (s *V3Store) write(ctx context.Context, what, p string, ttl *time.Duration, under parents, cmp []*pb.Compare,
	then func(lease int64) []*pb.RequestOp) (*pb.TxnResponse, ttlInfo, Meta, error) {
	lease, t, err := s.grant(ctx, ttl)
	if err != nil {
		return nil, t, Meta{}, err
	}
	var resp *pb.TxnResponse
	switch {
	case deep(p) && under == withParents:
		resp, err = s.txnDeep(ctx, label{what, p}, p, cmp, then(lease))
	case deep(p):
		resp, err = s.txnThenProbe(ctx, label{what, p}, p, cmp, then(lease))
	case under == withParents:
		resp, err = s.txnUnder(ctx, label{what, p}, p, cmp, then(lease))
	default:
		resp, err = s.txn(ctx, label{what, p}, cmp, then(lease), s.l.probeOps(p))
	}
	if err != nil {
		s.revokeLater(lease)
		return nil, t, Meta{}, err
	}
	if !resp.Succeeded {
		s.revokeLater(lease)
	}
	return resp, t, MetaOf(resp.Header), nil
}

// txnUnder runs a write whose ops need p's parent directories. The first
// try compares that every parent's marker exists and carries no nested
// transactions to make them: the common case, a write into an existing
// directory, costs the member about a sixth less. When that try fails, for
// any reason, the full transaction runs: it makes the missing markers and
// reads, in its else branch, what names the error. Each try is atomic on
// its own, so a failed first try is as if the client had written a moment
// later.
func (s *V3Store) txnUnder(ctx context.Context, what label, p string, cmp []*pb.Compare, ops []*pb.RequestOp) (*pb.TxnResponse, error) {
	if ancestorCount(p) > 0 {
		// Into cmp's spare room (parentsNoFile leaves it): cmp itself
		// keeps its length for the full transaction.
		fast := s.l.parentMarkersExist(cmp, p)
		resp, err := s.txn(ctx, what, fast, ops, nil)
		if err != nil || resp.Succeeded {
			return resp, err
		}
	}
	return s.txn(ctx, what, cmp, append(s.l.MarkerOps(p), ops...), s.l.probeOps(p))
}

// createOps create p (a file, or a directory with o.Dir), not its parents.
func (s *V3Store) createOps(p string, o SetOptions, lease int64) []*pb.RequestOp {
	var ops []*pb.RequestOp
	if o.Dir {
		ops = append(ops, opPut(s.l.Marker(p), "", lease))
	} else {
		ops = append(ops, opPut(s.l.Key(p), o.Value, lease))
	}
	return append(ops, s.l.ActionOp(p, ActionCreate))
}
