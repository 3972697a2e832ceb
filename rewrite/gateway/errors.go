package gateway

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/etcdshim/etcdshim/internal/redact"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// legacyStatus is grpc-gateway v1's gRPC → HTTP mapping, which 3.4 used.
func legacyStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return http.StatusRequestTimeout
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// legacyError writes 3.4's error body: {"error":msg,"message":msg,"code":n}.
func legacyError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	st := status.Convert(err)
	w.Header().Del("Trailer")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(legacyStatus(st.Code()))
	b, _ := json.Marshal(legacyBody(st))
	_, _ = w.Write(b)
}

type legacyErr struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Code    int32  `json:"code"`
}

func legacyBody(st *status.Status) legacyErr {
	msg := redact.Cause(st.Message())
	return legacyErr{Error: msg, Message: msg, Code: int32(st.Code())}
}

// v3Error is grpc-gateway's default error answer for /v3 with the members'
// addresses taken out of the message (the log keeps them).
func v3Error(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, clientError(err))
}

// clientError is err with a message a client may see.
func clientError(err error) error {
	st := status.Convert(err)
	if !redact.Leaks(st.Message()) {
		return err
	}
	return status.Error(st.Code(), redact.Unavailable)
}
