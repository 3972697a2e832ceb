package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/etcdshim/etcdshim/internal/ctxtime"
	"go.uber.org/zap"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
)

// Writes of the shim's own go to the leader when the pool knows it.
//
// During a leadership transfer (a drain's MoveLeader, or etcd's own on a
// graceful stop) the leader refuses new proposals. Its own clients learn it at
// once ("raft proposal dropped": nothing was appended, the picker retries
// safely), but a proposal a follower forwards to it is dropped silently: the
// follower answers "request timed out" after its request timeout, an outcome
// nobody can settle, and the client gets an error. Sent to the leader, a
// write during a transfer is refused in the clear and retried after a pause,
// on the new leader. It also saves the follower's forwarding hop.
//
// The leader is learnt from each member's Status at every probe (no raft
// round trip); stale or missing knowledge only means the write goes through
// a follower, as before. With auth on, etcd 3.6 and later answer Status only
// to an authenticated user: without a client certificate whose CN is a user
// (--cert), the shim learns no leader and this routing is off.

// learnLeader records the member's id and the leader it reports.
func (ep *endpoint) learnLeader(ctx context.Context) {
	st, err := etcdrpc.NewMaintenanceClient(ep.conn).Status(ctx, &pb.StatusRequest{})
	if err != nil {
		ep.leaderID.Store(0)
		return
	}
	ep.memberID.Store(st.GetHeader().GetMemberId())
	ep.leaderID.Store(st.GetLeader())
}

// isWrite: calls that propose to raft.
func isWrite(method string) bool {
	if readMethods[method] {
		return false
	}
	return strings.HasPrefix(method, "/etcdserverpb.KV/") || strings.HasPrefix(method, "/etcdserverpb.Lease/Lease")
}

// firstFor is the member a call goes to first: the leader for a write, when a
// healthy endpoint is the leader the current member reports; else the
// current member.
func (p *Pool) firstFor(method string) *endpoint {
	cur := p.current()
	if !isWrite(method) {
		return cur
	}
	leader := cur.leaderID.Load()
	if leader == 0 || cur.memberID.Load() == leader {
		return cur
	}
	for _, ep := range p.eps {
		if ep.memberID.Load() == leader && ep.healthy.Load() && ep.drain.Load() == drainOff {
			return ep
		}
	}
	return cur
}

// proposalDropped: the leader refused the proposal without appending it
// (a transfer in progress). Sending it on to a follower now would have it
// forwarded to that leader and dropped silently.
func proposalDropped(err error) bool {
	return status.Convert(err).Message() == "raft proposal dropped"
}

// MoveLeader transfers leadership to a healthy voting member when the member
// u (nil: the preferred one) leads, as `etcdctl move-leader` does, while it
// still serves: a leader that learns of its shutdown from SIGTERM has
// stopped serving, and proposals through it can time out with an unknown
// outcome. It returns the new leader's id, or 0 when the member did not lead.
func (p *Pool) MoveLeader(ctx context.Context, u *url.URL) (uint64, error) {
	ep, err := p.endpointFor(u)
	if err != nil {
		return 0, err
	}
	mc := etcdrpc.NewMaintenanceClient(ep.conn)
	st, err := mc.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return 0, fmt.Errorf("status of %s: %w", ep.url, err)
	}
	self := st.GetHeader().GetMemberId()
	if st.Leader != self {
		return 0, nil
	}
	target, err := p.nextLeader(ctx, ep, self)
	if err != nil {
		return 0, err
	}
	if _, err := mc.MoveLeader(ctx, &pb.MoveLeaderRequest{TargetID: target}); err != nil {
		return 0, fmt.Errorf("move-leader to %x: %w", target, err)
	}
	p.log.Info("leadership moved", zap.String("from", fmt.Sprintf("%x", self)), zap.String("to", fmt.Sprintf("%x", target)))
	// The other members' shims send their writes to the leader they learnt
	// at their last probe (learnLeader): give them two probe intervals (the
	// same --health-interval is assumed) to learn the new one, so that no
	// write of theirs is in flight on this member when it stops (a 3.4
	// member closes its connections with the calls on them).
	ctxtime.Sleep(ctx, 2*p.opts.HealthInterval)
	return target, nil
}

// nextLeader picks the member to lead next: the first other configured
// endpoint that is healthy and votes; without one, any other voting member.
func (p *Pool) nextLeader(ctx context.Context, ep *endpoint, self uint64) (uint64, error) {
	for _, other := range p.eps {
		if other == ep || !other.healthy.Load() {
			continue
		}
		st, err := etcdrpc.NewMaintenanceClient(other.conn).Status(ctx, &pb.StatusRequest{})
		if err != nil || st.IsLearner || st.GetHeader().GetMemberId() == self || len(st.Errors) > 0 {
			continue
		}
		return st.GetHeader().GetMemberId(), nil
	}
	ml, err := etcdrpc.NewClusterClient(ep.conn).MemberList(ctx, &pb.MemberListRequest{})
	if err != nil {
		return 0, fmt.Errorf("member list: %w", err)
	}
	for _, m := range ml.Members {
		if m.ID != self && !m.IsLearner && m.Name != "" {
			return m.ID, nil
		}
	}
	return 0, errors.New("no other voting member to lead")
}
