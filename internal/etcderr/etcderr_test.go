package etcderr

import (
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("range /a: %w", err) }
	// What a member's error looks like on the client side of a connection.
	wire := func(err error) error { return status.Error(status.Code(err), rpctypes.ErrorDesc(err)) }
	cases := []struct {
		name          string
		err           error
		invalid, deny bool
		unauth        bool // Unauthorized
		is            error
	}{
		{"expired token", wrap(wire(rpctypes.ErrGRPCInvalidAuthToken)), true, true, true, rpctypes.ErrGRPCInvalidAuthToken},
		{"old auth revision", wire(rpctypes.ErrGRPCAuthOldRevision), true, true, true, rpctypes.ErrAuthOldRevision},
		{"permission denied", wrap(wire(rpctypes.ErrGRPCPermissionDenied)), false, true, true, rpctypes.ErrPermissionDenied},
		{"user name empty", wrap(wrap(wire(rpctypes.ErrGRPCUserEmpty))), false, true, true, rpctypes.ErrGRPCUserEmpty},
		{"wrong password", wire(rpctypes.ErrGRPCAuthFailed), false, true, true, rpctypes.ErrGRPCAuthFailed},
		{"auth not enabled", wire(rpctypes.ErrGRPCAuthNotEnabled), false, false, false, rpctypes.ErrGRPCAuthNotEnabled},
		{"member not found", wrap(wire(rpctypes.ErrGRPCMemberNotFound)), false, false, false, rpctypes.ErrGRPCMemberNotFound},
		{"unavailable", wrap(status.Error(codes.Unavailable, "connection refused")), false, false, false, nil},
		// Refused v2 credentials are no member's gRPC error, but v2 answers
		// them as one (Unauthorized).
		{"bad v2 credentials", wrap(ErrBadCredentials), false, false, true, nil},
		// A message that merely mentions the words is not the error.
		{"look-alike", errors.New("etcdserver: permission denied"), false, false, false, nil},
		{"nil", nil, false, false, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := InvalidToken(c.err); got != c.invalid {
				t.Errorf("InvalidToken = %v", got)
			}
			if got := Denied(c.err); got != c.deny {
				t.Errorf("Denied = %v", got)
			}
			if got := Unauthorized(c.err); got != c.unauth {
				t.Errorf("Unauthorized = %v", got)
			}
			if c.is != nil && !Is(c.err, c.is) {
				t.Errorf("Is(%v) = false", c.is)
			}
			if c.is != rpctypes.ErrGRPCUserEmpty && Is(c.err, rpctypes.ErrGRPCUserEmpty) {
				t.Errorf("Is(user empty) = true")
			}
		})
	}
}
