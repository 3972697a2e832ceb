package etcderr

import (
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Status is the gRPC status err carries, however deeply wrapped, or nil.
func Status(err error) *status.Status {
	var se interface{ GRPCStatus() *status.Status }
	if err == nil || !errors.As(err, &se) {
		return nil
	}
	return se.GRPCStatus()
}

// Code is err's gRPC status code (OK for nil, Unknown for a non-gRPC error).
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if st := Status(err); st != nil {
		return st.Code()
	}
	return codes.Unknown
}

// Is reports whether err is etcd's error target: target is one of rpctypes'
// ErrGRPC* (the server side) or Err* (the client side) values; both name the
// same etcd error by its code and description.
func Is(err, target error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, target) {
		return true
	}
	st := Status(err)
	if st == nil {
		return false
	}
	want, ok := rpctypes.Error(target).(rpctypes.EtcdError)
	if !ok {
		return false
	}
	got, ok := rpctypes.Error(st.Err()).(rpctypes.EtcdError)
	return ok && got == want
}

// InvalidToken reports an error that a fresh token cures: the token expired
// or is unknown to the member (simple tokens live --auth-token-ttl, and a
// restarted member forgets them), or the auth store changed since it was
// issued.
func InvalidToken(err error) bool {
	return Is(err, rpctypes.ErrGRPCInvalidAuthToken) || Is(err, rpctypes.ErrGRPCAuthOldRevision)
}

// Denied reports a refusal of the request's identity or rights: v2 answers
// it with 110 (401).
func Denied(err error) bool {
	switch Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return Is(err, rpctypes.ErrGRPCUserEmpty) || Is(err, rpctypes.ErrGRPCAuthFailed) || InvalidToken(err)
}

// ErrBadCredentials means a v2 client's credentials were refused: the member
// would not authenticate its user and password, or its Authorization header
// is not Basic. v2 answers it as any refusal (Unauthorized).
var ErrBadCredentials = errors.New("insufficient credentials")

// Unauthorized reports what v2 answers with 110 (401) "Insufficient
// credentials": refused credentials, or a refusal of the request's
// identity or rights (Denied).
func Unauthorized(err error) bool { return errors.Is(err, ErrBadCredentials) || Denied(err) }

// Unavailable reports a call that no member served (the pool found none
// healthy, or the member went away mid-call).
func Unavailable(err error) bool { return Code(err) == codes.Unavailable }
