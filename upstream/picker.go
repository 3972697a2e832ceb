package upstream

import (
	"context"
	"strings"
	"time"

	"github.com/etcdshim/etcdshim/internal/ctxtime"
	"github.com/etcdshim/etcdshim/internal/etcderr"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// picker is the gRPC connection the shim's own components (gateway, v2,
// health) use: each call goes to the current member, and a call that fails
// because that member (or the cluster, for a moment) could not serve it is
// retried — on the next members, then again after a short pause — when that
// is safe:
//
//   - a read (Range, Status, MemberList, LeaseTimeToLive, …) on any
//     Unavailable, whether the transport broke or the member answered
//     "etcdserver: leader changed" / "no leader" / "request timed out": it
//     changes nothing, so running it twice is harmless;
//   - any call, writes included, when it provably never reached a member:
//     grpc-go never queued its request headers on a connection (sentOption
//     below learns that per call), or the member refused it
//     before acting on it ("etcdserver: no leader", "too many requests",
//     "raft proposal dropped").
//
// A write whose request went out and then failed (the connection broke, the
// member answered "request timed out" or "server stopped") may have been
// applied and is never retried: its error goes to the client, as etcd's
// clientv3 does for its non-repeatable calls (retry_interceptor.go,
// isSafeRetryMutableRPC). grpc-go itself already retries, once and
// transparently, a stream a GOAWAY or REFUSED_STREAM proves unprocessed.
//
// Reading back to settle such a write (is the v2 key at our value, with our
// action?) was considered and rejected: a v2 write's transaction carries
// nothing unique to it (another client may have written the same value
// with the same action), and after "request timed out" etcd itself cannot
// say whether the entry will still commit, so a read that misses it proves
// nothing and a resend could apply it twice (an in-order POST twice, a CAS
// over a newer value). The v2 layer answers error 300, as etcd 3.4 does.
type picker struct{ p *Pool }

// readMethods may be retried on another member even if the first one may
// have received them: they change nothing.
var readMethods = map[string]bool{
	"/etcdserverpb.KV/Range":              true,
	"/etcdserverpb.Maintenance/Status":    true,
	"/etcdserverpb.Cluster/MemberList":    true,
	"/etcdserverpb.Lease/LeaseTimeToLive": true,
	"/etcdserverpb.Lease/LeaseLeases":     true,
	"/etcdserverpb.Auth/AuthStatus":       true,
	"/etcdserverpb.Auth/Authenticate":     true,
	"/etcdserverpb.Auth/UserGet":          true,
	"/etcdserverpb.Auth/UserList":         true,
	"/etcdserverpb.Auth/RoleGet":          true,
	"/etcdserverpb.Auth/RoleList":         true,
	"/grpc.health.v1.Health/Check":        true,
	"/v3electionpb.Election/Leader":       true,
	"/etcdserverpb.Maintenance/HashKV":    true,
	"/etcdserverpb.Maintenance/Hash":      true,
}

// verdict is what a failed call allows.
type verdict int

const (
	noRetry verdict = iota
	// retryMemberDown: the member's connection failed; take it out of
	// rotation and try the others.
	retryMemberDown
	// retryCluster: the member answered that the cluster cannot serve the
	// call right now (leader election, overload); try again shortly.
	retryCluster
)

// classify decides whether a failed call may be sent again. sent reports
// whether grpc-go queued the call's request headers on a connection (false:
// provably never reached a member).
func classify(method string, err error, sent bool) verdict {
	st, ok := status.FromError(err)
	if !ok {
		return noRetry
	}
	msg := st.Message()
	// raft refused the proposal before appending it (a leadership transfer
	// in progress, no leader known): nothing was applied, whatever the call.
	// etcd passes this error on without a gRPC code of its own.
	if msg == "raft proposal dropped" {
		return retryCluster
	}
	switch st.Code() {
	case codes.Unavailable:
	case codes.ResourceExhausted:
		// etcd's "too many requests" is refused before proposing.
		if msg == "etcdserver: too many requests" {
			return retryCluster
		}
		return noRetry
	default:
		return noRetry
	}
	read := readMethods[method]
	if strings.HasPrefix(msg, "etcdserver:") {
		// The member answered. "no leader" comes from etcd's interceptor
		// before the request is looked at; everything else ("request timed
		// out", "server stopped", "leader changed") may follow a proposal.
		if read || msg == "etcdserver: no leader" {
			return retryCluster
		}
		return noRetry
	}
	if read || !sent {
		return retryMemberDown
	}
	return noRetry
}

// sentOption learns whether a call's last attempt put its request headers
// on a connection. grpc-go fills a Peer call option only when the attempt
// got a transport stream, and it gets one only after queueing the headers
// (http2Client.NewStream); a transparent retry is a new attempt, so an
// earlier attempt's stream does not count: grpc-go only retries one the
// member proved it did not process. This replaced a stats handler on the
// connections, which cost every call about 17 allocations.
func sentOption(opts []grpc.CallOption) ([]grpc.CallOption, *peer.Peer) {
	from := &peer.Peer{}
	return append(opts[:len(opts):len(opts)], grpc.Peer(from)), from
}

// Retry pacing: every healthy member once per round, then a pause that grows
// to maxRetryPause, for at most maxRetryRounds rounds (or the call's
// deadline, whichever ends first). Leader elections in etcd take one to a few
// election timeouts; the rounds cover several seconds.
const (
	firstRetryPause = 25 * time.Millisecond
	maxRetryPause   = 500 * time.Millisecond
	maxRetryRounds  = 16
)

func (pk picker) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	pause := firstRetryPause
	var err error
	// A call that finds no member healthy fails at once if the pool knew
	// that before it was sent, else within NoMemberWait (unavailable.go).
	wasHealthy := pk.p.Healthy()
	var noneSince time.Time
	for round := 0; ; round++ {
		// Made on the first failure: most calls succeed at once.
		var tried map[*endpoint]bool
	members:
		for ep := pk.p.firstFor(method); ep != nil; {
			callOpts, from := sentOption(opts)
			ep.inflight.Add(1)
			err = ep.conn.Invoke(ctx, method, args, reply, callOpts...)
			ep.inflight.Add(-1)
			if err == nil || ctx.Err() != nil {
				return err
			}
			if tried == nil {
				tried = make(map[*endpoint]bool, len(pk.p.eps))
			}
			tried[ep] = true
			var next *endpoint
			switch classify(method, err, from.Addr != nil) {
			case noRetry:
				next = pk.p.tokenFallback(ep, err, tried)
				if next == nil {
					return err
				}
			case retryMemberDown:
				ep.markDown("call failed: " + status.Convert(err).Message())
			case retryCluster:
				// The member is up; the cluster is between leaders. Another
				// member may already know the new one.
				if proposalDropped(err) {
					// ...but not for a proposal the leader refused during a
					// transfer: a follower would forward it to that leader,
					// which drops it silently (leader.go). Wait, then retry.
					break members
				}
			}
			if next == nil {
				next = pk.p.nextHealthy(tried)
			}
			ep = next
		}
		if round+1 >= maxRetryRounds {
			return err
		}
		wait := pause
		if !pk.p.Healthy() {
			if noneSince.IsZero() {
				noneSince = time.Now()
			}
			left := NoMemberWait - time.Since(noneSince)
			if !wasHealthy || left <= 0 {
				return errNoMember
			}
			wait = min(wait, left)
		}
		if !ctxtime.Sleep(ctx, wait) {
			return err
		}
		pause = min(2*pause, maxRetryPause)
	}
}

// tokenFallback is the current member when ep is not it and refused a call
// for its token, so the call is sent there instead; nil otherwise.
//
// That is a write sent to the leader (firstFor) instead of the current
// member, refused for its token before anything was proposed: nothing was
// applied. Simple tokens are per member: each assigns one when it applies
// the Authenticate, and drops it when nobody used it there for
// --auth-token-ttl. The client authenticated through the current member
// (Authenticate is not a write) and uses its token there, but the leader
// may not have applied that Authenticate yet, or may have dropped the token
// already while the current member was still catching up (after a
// restart). The current member knows the token and forwards the proposal.
// A token the current member refuses too goes back to the client, which
// authenticates again.
func (p *Pool) tokenFallback(ep *endpoint, err error, tried map[*endpoint]bool) *endpoint {
	cur := p.current()
	if ep == cur || tried[cur] || !etcderr.Is(err, rpctypes.ErrGRPCInvalidAuthToken) {
		return nil
	}
	return cur
}

// nextHealthy is the first healthy member not tried yet in this round.
func (p *Pool) nextHealthy(tried map[*endpoint]bool) *endpoint {
	for _, ep := range p.eps {
		if !tried[ep] && ep.healthy.Load() {
			return ep
		}
	}
	return nil
}

func (pk picker) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	first := pk.p.current()
	cs, err := first.newStream(ctx, desc, method, opts...)
	if err == nil || ctx.Err() != nil || status.Code(err) != codes.Unavailable {
		return cs, err
	}
	// Opening a stream sends nothing the member acts on: try the others.
	first.markDown("stream failed: " + status.Convert(err).Message())
	for _, ep := range pk.p.eps {
		if ep == first || !ep.healthy.Load() {
			continue
		}
		if cs, err = ep.newStream(ctx, desc, method, opts...); err == nil {
			return cs, nil
		}
	}
	if !pk.p.Healthy() {
		return nil, errNoMember
	}
	return nil, err
}
