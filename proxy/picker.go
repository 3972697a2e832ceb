package proxy

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// picker is the gRPC connection the shim's own components (gateway, v2) use:
// each call goes to the current member, and a call that fails because that
// member is unreachable is retried on the next ones when that is safe.
type picker struct{ p *Pool }

// idempotentMethods may be retried on another member even if the first one
// may have received them: they change nothing.
var idempotentMethods = map[string]bool{
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

// retryable reports whether err means the member could not serve the call
// and the call may go to another member: any call that never reached the
// member, and idempotent calls whose connection broke.
func retryable(method string, err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	msg := st.Message()
	if strings.HasPrefix(msg, "etcdserver:") {
		// The member answered (no leader, leader changed, …): the cluster,
		// not this member, is the problem, and a write may have applied.
		return false
	}
	return idempotentMethods[method] || notSent(msg)
}

// notSent recognises grpc-go's errors for calls that found no connection.
func notSent(msg string) bool {
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "while dialing") ||
		strings.Contains(msg, "connection error")
}

func (pk picker) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	first := pk.p.current()
	err := first.conn.Invoke(ctx, method, args, reply, opts...)
	if err == nil || ctx.Err() != nil || !retryable(method, err) {
		return err
	}
	first.markDown("call failed: " + status.Convert(err).Message())
	for _, ep := range pk.p.eps {
		if ep == first || !ep.healthy.Load() {
			continue
		}
		err = ep.conn.Invoke(ctx, method, args, reply, opts...)
		if err == nil || ctx.Err() != nil || !retryable(method, err) {
			return err
		}
	}
	return err
}

func (pk picker) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	first := pk.p.current()
	cs, err := first.conn.NewStream(ctx, desc, method, opts...)
	if err == nil || ctx.Err() != nil || status.Code(err) != codes.Unavailable {
		return cs, err
	}
	// Opening a stream sends nothing the member acts on: try the others.
	first.markDown("stream failed: " + status.Convert(err).Message())
	for _, ep := range pk.p.eps {
		if ep == first || !ep.healthy.Load() {
			continue
		}
		if cs, err = ep.conn.NewStream(ctx, desc, method, opts...); err == nil {
			return cs, nil
		}
	}
	return nil, err
}
