package upstream

import (
	"context"
	"strings"

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
