package v2edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The errors a handler meets, as they reach the edge (wrapped).
var (
	errBadCredentials = fmt.Errorf("authenticating alice: %w", etcderr.ErrBadCredentials)
	errDenied         = fmt.Errorf("range: %w", status.Error(codes.PermissionDenied, rpctypes.ErrorDesc(rpctypes.ErrGRPCPermissionDenied)))
	errUnreachable    = fmt.Errorf("put: %w", status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.7:2379: connect: connection refused"`))
	errNoLeader       = fmt.Errorf("put: %w", status.Error(codes.Unavailable, "etcdserver: no leader"))
	errCanceled       = fmt.Errorf("range: %w", context.Canceled)
	errCanceledRPC    = fmt.Errorf("range: %w", status.FromContextError(context.Canceled).Err())
	errInternal       = errors.New("reading the permissions of alice: something broke at 10.0.0.7:2379")
)

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		body   string
		warns  int // lines logged at Warn
	}{
		{"v2 error", fmt.Errorf("put user: %w", Errorf(http.StatusConflict, "auth: User %s already exists.", "bob")), 409, `{"message":"auth: User bob already exists."}`, 0},
		{"bad credentials", errBadCredentials, 401, `{"message":"Insufficient credentials"}`, 0},
		{"denied", errDenied, 401, `{"message":"Insufficient credentials"}`, 0},
		{"no member", errUnreachable, 500, `{"message":"upstream member unavailable"}`, 1},
		{"no leader", errNoLeader, 500, `{"message":"upstream member unavailable"}`, 1},
		{"anything else", errInternal, 500, `{"message":"Internal Server Error"}`, 1},
		{"client gone", errCanceled, 500, `{"message":"Internal Server Error"}`, 0},
		{"client gone, as a gRPC status", errCanceledRPC, 500, `{"message":"Internal Server Error"}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			rec := httptest.NewRecorder()
			WriteError(rec, tc.err, zap.New(core))
			if rec.Code != tc.status || rec.Body.String() != tc.body || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q %v, want %d %q", rec.Code, rec.Body.String(), rec.Header(), tc.status, tc.body)
			}
			if logs.Len() != tc.warns {
				t.Fatalf("%d warnings, want %d: %v", logs.Len(), tc.warns, logs.All())
			}
		})
	}
}

func TestWriteKeysError(t *testing.T) {
	const unauthorized = `{"errorCode":110,"message":"The request requires user authentication","cause":"Insufficient credentials","index":0}`
	raftInternal := func(cause string) string {
		return `{"errorCode":300,"message":"Raft Internal Error","cause":"` + cause + `","index":0}`
	}
	notFound := fmt.Errorf("get: %w", v2store.NewError(v2store.EcodeKeyNotFound, "/a", 42))
	for _, tc := range []struct {
		name   string
		err    error
		status int
		body   string // and a newline
		index  string // X-Etcd-Index
		warns  int
	}{
		{"v2 condition", notFound, 404, `{"errorCode":100,"message":"Key not found","cause":"/a","index":42}`, "42", 0},
		{"bad credentials", errBadCredentials, 401, unauthorized, "0", 0},
		{"denied", errDenied, 401, unauthorized, "0", 0},
		// The member's words pass; an address does not.
		{"no leader", errNoLeader, 500, raftInternal("etcdserver: no leader"), "0", 1},
		{"no member", errUnreachable, 500, raftInternal("upstream member unavailable"), "0", 1},
		{"anything else", errInternal, 500, raftInternal("upstream member unavailable"), "0", 1},
		{"client gone", errCanceled, 500, raftInternal("range: context canceled"), "0", 0},
		{"client gone, as a gRPC status", errCanceledRPC, 500, raftInternal("context canceled"), "0", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			rec := httptest.NewRecorder()
			WriteKeysError(rec, tc.err, zap.New(core))
			if rec.Code != tc.status || rec.Body.String() != tc.body+"\n" || rec.Header().Get("X-Etcd-Index") != tc.index {
				t.Fatalf("%d %q %v, want %d %q", rec.Code, rec.Body.String(), rec.Header(), tc.status, tc.body)
			}
			if logs.Len() != tc.warns {
				t.Fatalf("%d warnings, want %d: %v", logs.Len(), tc.warns, logs.All())
			}
		})
	}
}
