package v2edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/redact"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
)

// Error is 3.4's httptypes.HTTPError, the error answer of the members,
// stats and auth endpoints: a status and {"message":…}.
type Error struct {
	Status  int
	Message string
}

// Errorf returns the error answered with status and the formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Message }

// WriteMessage answers status with {"message":msg} and no newline, as
// 3.4's HTTPError.WriteTo.
func WriteMessage(w http.ResponseWriter, status int, msg string) {
	WriteJSONNoNewline(w, status, struct {
		Message string `json:"message"`
	}{msg})
}

// Insufficient is what v2 answers a refused identity with, on every
// endpoint.
const Insufficient = "Insufficient credentials"

// WriteError answers err on the members, stats and auth endpoints: an
// *Error as it is, refused credentials or rights as 401, a call no member
// served as 500 in the words every surface uses (redact.Unavailable), and
// anything else as 3.4 answers errors it has no shape for, 500 "Internal
// Server Error". The cause goes to log, not to the client.
func WriteError(w http.ResponseWriter, err error, log *zap.Logger) {
	var e *Error
	switch {
	case errors.As(err, &e):
	case etcderr.Unauthorized(err):
		log.Debug("v2 request refused by the member", zap.Error(err))
		e = &Error{Status: http.StatusUnauthorized, Message: Insufficient}
	case etcderr.Unavailable(err):
		logFailure(log, err)
		e = &Error{Status: http.StatusInternalServerError, Message: redact.Unavailable}
	default:
		logFailure(log, err)
		e = &Error{Status: http.StatusInternalServerError, Message: "Internal Server Error"}
	}
	WriteMessage(w, e.Status, e.Message)
}

// WriteKeysError answers err on /v2/keys: a v2 condition (*v2store.Error)
// as it is, refused credentials or rights as 110, anything else as 300 with
// its cause, in words a v2 client can log and without the members'
// addresses (the log keeps them).
func WriteKeysError(w http.ResponseWriter, err error, log *zap.Logger) {
	var ve *v2store.Error
	switch {
	case errors.As(err, &ve):
	case etcderr.Unauthorized(err):
		log.Debug("v2 request refused by the member", zap.Error(err))
		ve = v2store.NewError(v2store.EcodeUnauthorized, Insufficient, 0)
	default:
		logFailure(log, err)
		ve = v2store.NewError(v2store.EcodeRaftInternal, upstreamCause(err), 0)
	}
	WriteV2Error(w, ve)
}

// WriteV2Error writes a v2 error as 3.4 does: its status, JSON and a
// newline, with X-Etcd-Index (and no X-Raft-* headers).
func WriteV2Error(w http.ResponseWriter, e *v2store.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Etcd-Index", strconv.FormatUint(e.Index, 10))
	w.WriteHeader(V2Status(e.Code))
	_ = json.NewEncoder(w).Encode(e)
}

// V2Status is the HTTP status 3.4 answers a v2 error code with.
func V2Status(code int) int {
	if s, ok := v2Statuses[code]; ok {
		return s
	}
	return http.StatusBadRequest
}

// v2Statuses maps v2 error codes to HTTP statuses; every other code is 400.
var v2Statuses = map[int]int{
	v2store.EcodeKeyNotFound:  http.StatusNotFound,
	v2store.EcodeNotFile:      http.StatusForbidden,
	v2store.EcodeDirNotEmpty:  http.StatusForbidden,
	v2store.EcodeUnauthorized: http.StatusUnauthorized,
	v2store.EcodeTestFailed:   http.StatusPreconditionFailed,
	v2store.EcodeNodeExist:    http.StatusPreconditionFailed,
	v2store.EcodeRaftInternal: http.StatusInternalServerError,
	v2store.EcodeLeaderElect:  http.StatusInternalServerError,
}

// logFailure logs a call that failed upstream; a client that went away is
// not a failure, whether its context's error arrives as it is or as the
// gRPC status Canceled (a call, or a shared Authenticate, it stopped
// waiting for). Each abandoned request was once a Warn line: a client
// sending and dropping requests wrote the log as fast as it sent them.
func logFailure(log *zap.Logger, err error) {
	if !errors.Is(err, context.Canceled) && etcderr.Code(err) != codes.Canceled {
		log.Warn("v2 request failed upstream", zap.Error(err))
	}
}

// upstreamCause is err's message, or its gRPC status's, redacted.
func upstreamCause(err error) string {
	if st := etcderr.Status(err); st != nil {
		return redact.Cause(st.Message())
	}
	return redact.Cause(err.Error())
}
