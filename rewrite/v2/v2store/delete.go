package v2store

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Delete removes a file, an empty directory (dir), a subtree (recursive), or
// a file whose value or index matches (compare-and-delete). Explicit deletes
// leave the key's lease to run out, so watchers can tell them from expiry.
func (s *V3Store) Delete(ctx context.Context, p string, o DeleteOptions) (*Event, Meta, error) {
	s = s.scoped(ctx)
	if p == "/" {
		return rootReadOnly(ctx, s)
	}
	if o.PrevValue != "" || o.PrevIndex != 0 {
		return s.compareAndDelete(ctx, p, o)
	}
	start, end := s.l.Subtree(p)
	fileOps := []*pb.RequestOp{opDelete(s.l.Key(p), nil), s.l.ActionOp(p, ActionDelete)}
	var dirBranch []*pb.RequestOp
	switch {
	case o.Recursive:
		// Read the marker for prevNode, then remove everything below.
		dirBranch = []*pb.RequestOp{opGet(s.l.Marker(p)), opDelete(start, end), s.l.ActionOp(p, ActionDelete)}
	case o.Dir:
		// The directory's own record goes with it (scope.go).
		dirBranch = []*pb.RequestOp{opTxn(s.l.emptyDir(p),
			[]*pb.RequestOp{opGet(s.l.Marker(p)), opDelete(s.l.Marker(p), nil), s.l.ActionOp(p, ActionDelete), s.l.dropRecord(p)},
			[]*pb.RequestOp{opAny(start, end)})}
	default:
		dirBranch = s.l.probeOps(p) // a directory without dir/recursive: 102
	}
	probes := s.l.probeOps(p)
	if deep(p) {
		// Too many reads for one transaction: read them after a failure,
		// at its revision (deep.go).
		probes = nil
		if !o.Recursive && !o.Dir {
			dirBranch = nil
		}
	}
	resp, err := s.txn(ctx, label{"delete", p}, []*pb.Compare{s.l.isFile(p), s.l.NotDir(p)}, fileOps,
		[]*pb.RequestOp{opTxn([]*pb.Compare{s.l.isDir(p)}, dirBranch, probes)})
	if err != nil {
		return nil, Meta{}, err
	}
	m := MetaOf(resp.Header)
	rev := resp.Header.Revision
	if resp.Succeeded {
		prev := prevKV(resp.Responses[0])
		return &Event{Action: ActionDelete,
			Node:     &Node{Key: p, ModifiedIndex: uint64(rev), CreatedIndex: uint64(prev.CreateRevision)},
			PrevNode: s.prevNode(ctx, prev)}, m, nil
	}
	inner := resp.Responses[0].GetResponseTxn()
	if !inner.Succeeded {
		if deep(p) {
			if inner.Responses, err = s.probeAt(ctx, p, rev); err != nil {
				return nil, m, fmt.Errorf("delete %s: %w", p, err)
			}
		}
		return nil, m, s.l.readProbe(p, inner.Responses, rev).missing(p)
	}
	switch {
	case o.Recursive:
		return s.dirDeleted(ctx, p, inner.Responses[0].GetResponseRange().GetKvs(), rev), m, nil
	case o.Dir:
		empty := inner.Responses[0].GetResponseTxn()
		if !empty.Succeeded {
			return nil, m, NewError(EcodeDirNotEmpty, p, uint64(rev))
		}
		return s.dirDeleted(ctx, p, empty.Responses[0].GetResponseRange().GetKvs(), rev), m, nil
	}
	return nil, m, NewError(EcodeNotFile, p, uint64(rev))
}

// dirDeleted is the event of a directory delete; marker holds the
// directory's marker as it was (none for a directory implied by its keys).
func (s *V3Store) dirDeleted(ctx context.Context, p string, marker []*mvccpb.KeyValue, rev int64) *Event {
	prev := &Node{Key: p, Dir: true}
	if len(marker) > 0 {
		prev = s.prevNode(ctx, marker[0])
	}
	return &Event{Action: ActionDelete,
		Node:     &Node{Key: p, Dir: true, ModifiedIndex: uint64(rev), CreatedIndex: prev.CreatedIndex},
		PrevNode: prev}
}

func (s *V3Store) compareAndDelete(ctx context.Context, p string, o DeleteOptions) (*Event, Meta, error) {
	cmp := append([]*pb.Compare{s.l.isFile(p), s.l.NotDir(p)}, s.prevCompares(p, o.PrevValue, o.PrevIndex)...)
	del := []*pb.RequestOp{opDelete(s.l.Key(p), nil), s.l.ActionOp(p, ActionCompareAndDelete)}
	var resp *pb.TxnResponse
	var err error
	if deep(p) {
		resp, err = s.txnThenProbe(ctx, label{"compareAndDelete", p}, p, cmp, del)
	} else {
		resp, err = s.txn(ctx, label{"compareAndDelete", p}, cmp, del, s.l.probeOps(p))
	}
	if err != nil {
		return nil, Meta{}, err
	}
	m := MetaOf(resp.Header)
	if !resp.Succeeded {
		return nil, m, s.l.readProbe(p, resp.Responses, resp.Header.Revision).compareFailed(p, o.PrevValue, o.PrevIndex)
	}
	prev := prevKV(resp.Responses[0])
	return &Event{Action: ActionCompareAndDelete,
		Node:     &Node{Key: p, ModifiedIndex: uint64(resp.Header.Revision), CreatedIndex: uint64(prev.CreateRevision)},
		PrevNode: s.prevNode(ctx, prev)}, m, nil
}
