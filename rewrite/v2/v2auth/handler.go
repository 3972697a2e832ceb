package v2auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
)

// Options configure the /v2/auth handler.
type Options struct {
	// V2Prefix is the v3 prefix of the v2 keyspace.
	V2Prefix string
	Timeout  time.Duration
	Logger   *zap.Logger
}

// Handler serves /v2/auth/.
type Handler struct {
	opts   Options
	up     Upstream
	tokens *Tokens
}

// New returns the /v2/auth handler.
func New(opts Options, up Upstream, tokens *Tokens) *Handler {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	return &Handler{opts: opts, up: up, tokens: tokens}
}

// authError is 3.4's v2 auth error: {"message":"auth: …"} and a status.
type authError struct {
	code int
	msg  string
}

func (e *authError) Error() string { return e.msg }

func authErr(code int, format string, args ...any) error {
	return &authError{code: code, msg: "auth: " + fmt.Sprintf(format, args...)}
}

func httpErr(code int, msg string) error { return &authError{code: code, msg: msg} }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sub := path.Clean(strings.TrimPrefix(r.URL.Path, "/v2/auth"))
	pieces := strings.Split(sub, "/") // "", "users", "name"
	var err error
	switch {
	case sub == "/enable":
		err = h.serveEnable(w, r)
	case len(pieces) >= 2 && (pieces[1] == "users" || pieces[1] == "roles"):
		switch len(pieces) {
		case 2:
			if pieces[1] == "users" {
				err = h.serveUsers(w, r)
			} else {
				err = h.serveRoles(w, r)
			}
		case 3:
			if pieces[1] == "users" {
				err = h.serveUser(w, r, pieces[2])
			} else {
				err = h.serveRole(w, r, pieces[2])
			}
		default:
			err = httpErr(http.StatusBadRequest, "Invalid path")
		}
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.writeError(w, err)
	}
}

// call runs an Auth API call as the request's user.
func (h *Handler) call(r *http.Request, fn func(ctx context.Context, ac pb.AuthClient) error) error {
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	ac := etcdrpc.NewAuthClient(h.up.ClientConn())
	return h.tokens.Do(ctx, r, func(ctx context.Context) error { return fn(ctx, ac) })
}

func (h *Handler) writeError(w http.ResponseWriter, err error) {
	var ae *authError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, ErrBadCredentials) || isDenied(err):
		ae = &authError{code: http.StatusUnauthorized, msg: "Insufficient credentials"}
	default:
		h.opts.Logger.Warn("v2 auth request failed upstream", zap.Error(err))
		ae = &authError{code: http.StatusInternalServerError, msg: "Internal Server Error"}
	}
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{ae.msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.code)
	_, _ = w.Write(b)
}

func isDenied(err error) bool { return etcderr.Denied(err) }

// is reports whether err is etcd's error target (an rpctypes.ErrGRPC*).
func is(err, target error) bool { return etcderr.Is(err, target) }

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ","))
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func setClusterID(w http.ResponseWriter, hdr *pb.ResponseHeader) {
	if hdr != nil && hdr.ClusterId != 0 {
		w.Header().Set("X-Etcd-Cluster-Id", fmt.Sprintf("%x", hdr.ClusterId))
	}
}

func (h *Handler) serveEnable(w http.ResponseWriter, r *http.Request) error {
	if !allow(w, r, "GET", "PUT", "DELETE") {
		return nil
	}
	var st *pb.AuthStatusResponse
	err := h.call(r, func(ctx context.Context, ac pb.AuthClient) (err error) {
		st, err = ac.AuthStatus(ctx, &pb.AuthStatusRequest{})
		return err
	})
	if err != nil {
		return err
	}
	setClusterID(w, st.Header)
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, struct {
			Enabled bool `json:"enabled"`
		}{st.Enabled})
		return nil
	case http.MethodPut:
		if st.Enabled {
			return authErr(http.StatusConflict, "already enabled")
		}
		err = h.call(r, func(ctx context.Context, ac pb.AuthClient) error {
			_, err := ac.AuthEnable(ctx, &pb.AuthEnableRequest{})
			return err
		})
		if is(err, rpctypes.ErrGRPCRootUserNotExist) || is(err, rpctypes.ErrGRPCRootRoleNotExist) {
			return authErr(http.StatusConflict, "No root user available, please create one")
		}
	case http.MethodDelete:
		if !st.Enabled {
			return authErr(http.StatusConflict, "already disabled")
		}
		err = h.call(r, func(ctx context.Context, ac pb.AuthClient) error {
			_, err := ac.AuthDisable(ctx, &pb.AuthDisableRequest{})
			return err
		})
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return nil
}
