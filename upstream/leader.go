package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/etcdshim/etcdshim/internal/ctxtime"
	"go.uber.org/zap"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
// a follower, as before. With auth on, etcd 3.5 and later answer Status only
// to an authenticated user: the pool then asks as the shim's --user
// (SetIdentity), or, with a client certificate whose CN is a user (--cert),
// as that user; with neither it learns no leader and this routing is off,
// so that a v2 write through a follower can time out during a move.

// Credentials give the pool's maintenance calls (Status, MemberList,
// MoveLeader) an identity: the shim's own --user (v2auth.Own).
type Credentials interface {
	// Context is ctx carrying a token (ctx itself while auth is off).
	Context(ctx context.Context) (context.Context, error)
	// Renew replaces the token carried by used after the member refused it.
	Renew(ctx, used context.Context, err error)
}

// SetIdentity makes the pool's maintenance calls run as c where a member
// requires a user for them.
func (p *Pool) SetIdentity(c Credentials) { p.identity.Store(&c) }

// withIdentity is ctx carrying the pool's identity, ctx when it has none.
func (p *Pool) withIdentity(ctx context.Context) (context.Context, error) {
	c := p.identity.Load()
	if c == nil {
		return ctx, nil
	}
	ictx, err := (*c).Context(ctx)
	if err != nil {
		return nil, fmt.Errorf("authenticating as the shim's --user: %w", err)
	}
	return ictx, nil
}

// status is ep's Status: anonymous until a member refused that (auth on,
// 3.5+), then as the pool's identity, once more with a fresh token when the
// member refused the cached one (it expired).
func (p *Pool) status(ctx context.Context, ep *endpoint) (*pb.StatusResponse, error) {
	mc := etcdrpc.NewMaintenanceClient(ep.conn)
	c := p.identity.Load()
	if c == nil || !p.statusNeedsUser.Load() {
		st, err := mc.Status(ctx, &pb.StatusRequest{})
		if c == nil || !etcderr.Is(err, rpctypes.ErrGRPCUserEmpty) {
			return st, err
		}
		p.statusNeedsUser.Store(true)
	}
	ictx, err := p.withIdentity(ctx)
	if err != nil {
		return nil, err
	}
	st, err := mc.Status(ictx, &pb.StatusRequest{})
	if !etcderr.InvalidToken(err) {
		return st, err
	}
	(*c).Renew(ctx, ictx, err)
	if ictx, err = p.withIdentity(ctx); err != nil {
		return nil, err
	}
	return mc.Status(ictx, &pb.StatusRequest{})
}

// learnLeader records the member's id and the leader it reports.
func (ep *endpoint) learnLeader(ctx context.Context) {
	st, err := ep.pool.status(ctx, ep)
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

// LeaderMove is what MoveLeader did: To is the new leader's id (0 when the
// member did not lead); Started and Ended frame the MoveLeader call, inside
// which the old leader refused proposals for a while.
type LeaderMove struct {
	To             uint64
	Started, Ended time.Time
}

// MoveLeader transfers leadership to a healthy voting member when the member
// u (nil: the preferred one) leads, as `etcdctl move-leader` does, while it
// still serves: a leader that learns of its shutdown from SIGTERM has
// stopped serving, and proposals through it can time out with an unknown
// outcome. It runs as the pool's identity (SetIdentity): with auth on, 3.5+
// members answer MoveLeader only to a user with the root role.
//
// A drain calls it before moving the relayed connections, while they are
// still on the member. From the transfer request until it follows the new
// leader (1 to 180 ms measured), the leader drops every proposal
// (go.etcd.io/raft, stepLeader). Its own clients learn it at once ("raft
// proposal dropped": not applied), but proposals forwarded by the other
// members are dropped silently and end in "request timed out", an unknown
// outcome, after the request timeout. Draining first would move this
// member's clients to a follower and turn their clear refusals into such
// timeouts, and the shim's own writes, which go to the leader only while it
// is in rotation (firstFor), with them (docs/internals.md, "Leadership moves
// and relayed v3 writes").
func (p *Pool) MoveLeader(ctx context.Context, u *url.URL) (LeaderMove, error) {
	var mv LeaderMove
	ep, err := p.endpointFor(u)
	if err != nil {
		return mv, err
	}
	st, err := p.status(ctx, ep)
	if err != nil {
		return mv, fmt.Errorf("status of %s: %w", ep.url, err)
	}
	self := st.GetHeader().GetMemberId()
	if st.Leader != self {
		return mv, nil
	}
	target, err := p.nextLeader(ctx, ep, self)
	if err != nil {
		return mv, err
	}
	ictx, err := p.withIdentity(ctx)
	if err != nil {
		return mv, err
	}
	mv.Started = time.Now()
	_, err = etcdrpc.NewMaintenanceClient(ep.conn).MoveLeader(ictx, &pb.MoveLeaderRequest{TargetID: target})
	mv.Ended = time.Now()
	if err != nil {
		return LeaderMove{}, fmt.Errorf("move-leader to %x: %w", target, err)
	}
	mv.To = target
	p.log.Info("leadership moved", zap.String("from", fmt.Sprintf("%x", self)), zap.String("to", fmt.Sprintf("%x", target)),
		zap.Duration("took", mv.Ended.Sub(mv.Started)))
	// The other members' shims send their writes to the leader they learnt
	// at their last probe (learnLeader): give them two probe intervals (the
	// same --health-interval is assumed) to learn the new one, so that no
	// write of theirs is in flight on this member when it stops (a 3.4
	// member closes its connections with the calls on them).
	ctxtime.Sleep(ctx, 2*p.opts.HealthInterval)
	return mv, nil
}

// nextLeader picks the member to lead next: of the other configured
// endpoints that are healthy, vote and follow a leader, the one with the
// highest committed index (the most up to date: raft sends MsgTimeoutNow
// only once the transferee has the leader's whole log, after an append
// otherwise, and the leader refuses proposals meanwhile; a member that
// restarted a moment ago may still be catching up), the first in
// --endpoints order on a tie; without one, any other voting member.
func (p *Pool) nextLeader(ctx context.Context, ep *endpoint, self uint64) (uint64, error) {
	var best *pb.StatusResponse
	for _, other := range p.eps {
		if other == ep || !other.healthy.Load() {
			continue
		}
		st, err := p.status(ctx, other)
		if err != nil || st.IsLearner || st.GetHeader().GetMemberId() == self || len(st.Errors) > 0 {
			continue
		}
		if best == nil || st.RaftIndex > best.RaftIndex {
			best = st
		}
	}
	if best != nil {
		return best.GetHeader().GetMemberId(), nil
	}
	ictx, err := p.withIdentity(ctx)
	if err != nil {
		return 0, err
	}
	ml, err := etcdrpc.NewClusterClient(ep.conn).MemberList(ictx, &pb.MemberListRequest{})
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
