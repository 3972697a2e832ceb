package v2store

import (
	"context"
	"fmt"
	"time"

	"github.com/etcdshim/etcdshim/internal/ctxtime"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refresh resets a file's TTL keeping its value (refresh=true). When the TTL
// is unchanged it renews the key's lease, which writes nothing, so no
// watcher — v2 or v3 — wakes, as 3.4 promises; a new TTL needs a new lease
// and thus a write (an accepted difference: v3 watchers see it).
func (s *V3Store) refresh(ctx context.Context, p string, o SetOptions) (*Event, Meta, error) {
	action := ActionSet
	if o.PrevExist != nil && *o.PrevExist {
		action = ActionUpdate
	}
	if o.PrevValue != "" || o.PrevIndex != 0 {
		// 3.4 refreshes as a compare-and-swap then: a TTL-refresh election
		// relies on a leader's refresh failing once another leads.
		action = ActionCompareAndSwap
	}
	secs := int64(*o.TTL / time.Second)
	if !s.l.canWrite(s.l.Key(p)) {
		// A refresh reads before it writes: refuse it first, as 3.4
		// checks the write permission before anything else.
		return nil, Meta{}, fmt.Errorf("refresh %s: %w", p, rpctypes.ErrGRPCPermissionDenied)
	}
	for attempt := 0; attempt < 3; attempt++ {
		r, err := s.kv.Range(ctx, &pb.RangeRequest{Key: s.l.Key(p)})
		if err != nil {
			return nil, Meta{}, fmt.Errorf("refresh %s: %w", p, err)
		}
		m := MetaOf(r.Header)
		if len(r.Kvs) == 0 {
			return nil, m, s.missingAt(ctx, s.kv, p, r.Header.Revision)
		}
		cur := r.Kvs[0]
		if (o.PrevValue != "" && string(cur.Value) != o.PrevValue) || (o.PrevIndex != 0 && uint64(cur.ModRevision) != o.PrevIndex) {
			return nil, m, NewError(EcodeTestFailed, compareFailCause(o.PrevValue, o.PrevIndex, cur), uint64(r.Header.Revision))
		}
		prev := s.prevNode(ctx, cur)
		node := s.fileNode(cur, nil)
		exp := s.now().Add(time.Duration(secs) * time.Second).UTC()
		node.Expiration, node.TTL = &exp, secs
		if cur.Lease != 0 {
			ttl, err := s.lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: cur.Lease})
			if err == nil && ttl.TTL > 0 && ttl.GrantedTTL == max(secs, 1) {
				alive, err := s.keepAliveOnce(ctx, cur.Lease)
				if err != nil {
					return nil, m, err
				}
				if !alive {
					continue // expired meanwhile: read again (100, or the key that replaced it)
				}
				return &Event{Action: action, Node: node, PrevNode: prev}, m, nil
			}
		}
		lease, _, err := s.grant(ctx, o.TTL)
		if err != nil {
			return nil, m, err
		}
		put := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: s.l.Key(p), IgnoreValue: true, Lease: lease}}}
		cmp := []*pb.Compare{{Key: s.l.Key(p), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_ModRevision{ModRevision: cur.ModRevision}}}
		resp, err := s.txn(ctx, label{"refresh", p}, cmp, []*pb.RequestOp{put, s.l.ActionOp(p, ActionRefresh)}, nil)
		if err != nil {
			s.revokeLater(lease)
			return nil, m, err
		}
		if !resp.Succeeded {
			s.revokeLater(lease)
			continue // changed meanwhile: read again
		}
		node.ModifiedIndex = uint64(resp.Header.Revision)
		return &Event{Action: action, Node: node, PrevNode: prev}, MetaOf(resp.Header), nil
	}
	return nil, Meta{}, fmt.Errorf("refresh %s: the key kept changing", p)
}

// keepAliveOnce renews lease id once; alive is false when the lease was
// gone (the member answers a TTL of 0 for a lease it no longer has).
//
// A renewal changes nothing but the lease's deadline, so one that failed
// with Unavailable (a member stopping, or the leader answering "waiting for
// the applied index took too long" while leadership moves, before renewing
// anything) is sent again after a short pause: twice renewed is renewed.
func (s *V3Store) keepAliveOnce(ctx context.Context, id int64) (alive bool, err error) {
	for attempt := 1; ; attempt++ {
		alive, err = s.keepAliveAttempt(ctx, id)
		if err == nil || status.Code(err) != codes.Unavailable || attempt == keepAliveAttempts {
			return alive, err
		}
		if !ctxtime.Sleep(ctx, time.Duration(attempt)*100*time.Millisecond) {
			return alive, err
		}
	}
}

// keepAliveAttempts bounds the renewals of one refresh (about 1.5 s of
// pauses, within an election or two).
const keepAliveAttempts = 6

func (s *V3Store) keepAliveAttempt(ctx context.Context, id int64) (alive bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ka, err := s.lease.LeaseKeepAlive(ctx)
	if err != nil {
		return false, fmt.Errorf("lease keep-alive: %w", err)
	}
	if err := ka.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
		return false, fmt.Errorf("lease keep-alive: %w", err)
	}
	resp, err := ka.Recv()
	if err != nil {
		return false, fmt.Errorf("lease keep-alive: %w", err)
	}
	return resp.TTL > 0, ka.CloseSend()
}
