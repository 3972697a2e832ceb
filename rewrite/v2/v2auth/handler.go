package v2auth

import (
	"bytes"
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
	"github.com/etcdshim/etcdshim/internal/redact"
	"github.com/etcdshim/etcdshim/internal/reqbody"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
)

// Options configure the /v2/auth handler.
type Options struct {
	// V2Prefix is the v3 prefix of the v2 keyspace.
	V2Prefix string
	// Timeout bounds one request's calls to the member.
	Timeout time.Duration
	// MaxRequestBytes bounds a request body (--max-request-bytes).
	MaxRequestBytes int64
	Logger          *zap.Logger
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
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 3 << 20
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
		if r.Method == http.MethodPut || r.Method == http.MethodDelete {
			err = h.requireRoot(r)
		}
		if err == nil {
			err = h.serveEnable(w, r)
		}
	case len(pieces) >= 2 && (pieces[1] == "users" || pieces[1] == "roles"):
		if len(pieces) <= 3 && rootMethod(r.Method, len(pieces) == 3) {
			if err = h.requireRoot(r); err != nil {
				break
			}
		}
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

// rootMethod: the methods a users/roles endpoint serves (a collection only
// GET), for which 3.4 requires root while auth is on; others get 405 first.
func rootMethod(method string, one bool) bool {
	return method == http.MethodGet || (one && (method == http.MethodPut || method == http.MethodDelete))
}

// requireRoot refuses, as 3.4 does while auth is on, a caller that is not
// the root user: v3 would let a user read itself and its roles, 3.4 does
// not. With auth off anyone may (credentials are then ignored).
func (h *Handler) requireRoot(r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	cctx, _, err := h.tokens.Context(ctx, r)
	if err != nil {
		return err // refused credentials: auth is on
	}
	root, authenticated := Root(cctx)
	switch {
	case root:
		return nil
	case authenticated:
		return etcderr.ErrBadCredentials
	}
	// No user: anonymous, or auth is off.
	st, err := h.status(r)
	if err != nil {
		return err
	}
	if st.Enabled {
		return etcderr.ErrBadCredentials
	}
	return nil
}

// status is the member's auth status, which 3.4 shows anyone. etcd answers
// AuthStatus only to an admin while auth is on, so a refusal of the
// caller's credentials, or of the call, means auth is on.
func (h *Handler) status(r *http.Request) (*pb.AuthStatusResponse, error) {
	var st *pb.AuthStatusResponse
	err := h.call(r, func(ctx context.Context, ac pb.AuthClient) (err error) {
		st, err = ac.AuthStatus(ctx, &pb.AuthStatusRequest{})
		return err
	})
	if etcderr.Unauthorized(err) {
		return &pb.AuthStatusResponse{Enabled: true}, nil
	}
	return st, err
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
	case etcderr.Unauthorized(err):
		ae = &authError{code: http.StatusUnauthorized, msg: "Insufficient credentials"}
	case etcderr.Unavailable(err):
		h.opts.Logger.Warn("v2 auth request failed upstream", zap.Error(err))
		ae = &authError{code: http.StatusInternalServerError, msg: redact.Unavailable}
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

// decode reads a JSON body, whole and within the limit, then decodes it.
func (h *Handler) decode(r *http.Request, v any) error {
	b, err := reqbody.Read(r, h.opts.MaxRequestBytes)
	if errors.Is(err, reqbody.ErrTooLarge) {
		return httpErr(http.StatusRequestEntityTooLarge, "Request body too large.")
	}
	// A decoder, as 3.4's: what follows the first JSON value is ignored.
	if err != nil || json.NewDecoder(bytes.NewReader(b)).Decode(v) != nil {
		return httpErr(http.StatusBadRequest, "Invalid JSON in request body.")
	}
	return nil
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
	// Open to anyone, as in 3.4 (a GET with a wrong password is answered).
	st, err := h.status(r)
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
