package v2auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path"
	"strings"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/reqbody"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// Options configure the /v2/auth handler.
type Options struct {
	// V2Prefix is the v3 prefix of the v2 keyspace.
	V2Prefix string
	// Limits bound one request's calls to the member and its body.
	Limits v2edge.Limits
	Logger *zap.Logger
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
	opts.Limits = opts.Limits.OrDefaults()
	return &Handler{opts: opts, up: up, tokens: tokens}
}

// authErr is 3.4's v2 auth error: "auth: …" and a status.
func authErr(status int, format string, args ...any) error {
	return v2edge.Errorf(status, "auth: "+format, args...)
}

func httpErr(status int, msg string) error { return &v2edge.Error{Status: status, Message: msg} }

// serve answers one method of an auth resource; name is the user or role
// the path names ("" for the others).
type serve func(h *Handler, w http.ResponseWriter, r *http.Request, name string) error

// The auth resources. Every method but GET /v2/auth/enable needs root
// while auth is on (asRoot); a method a resource does not serve gets 405
// before anything else, as in 3.4.
var (
	enableRoutes = v2edge.NewRouter(
		v2edge.On(http.MethodGet, serve((*Handler).getEnabled)),
		v2edge.On(http.MethodPut, asRoot((*Handler).enable)),
		v2edge.On(http.MethodDelete, asRoot((*Handler).disable)))
	collections = map[string]*v2edge.Router[serve]{
		"users": v2edge.NewRouter(v2edge.On(http.MethodGet, asRoot((*Handler).listUsers))),
		"roles": v2edge.NewRouter(v2edge.On(http.MethodGet, asRoot((*Handler).listRoles))),
	}
	resources = map[string]*v2edge.Router[serve]{
		"users": v2edge.NewRouter(
			v2edge.On(http.MethodGet, asRoot((*Handler).getUser)),
			v2edge.On(http.MethodPut, asRoot((*Handler).putUser)),
			v2edge.On(http.MethodDelete, asRoot((*Handler).deleteUser))),
		"roles": v2edge.NewRouter(
			v2edge.On(http.MethodGet, asRoot((*Handler).getRole)),
			v2edge.On(http.MethodPut, asRoot((*Handler).putRole)),
			v2edge.On(http.MethodDelete, asRoot((*Handler).deleteRole))),
	}
)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sub := path.Clean(strings.TrimPrefix(r.URL.Path, "/v2/auth"))
	pieces := strings.Split(sub, "/") // "", "users", "name"
	var routes *v2edge.Router[serve]
	name := ""
	switch {
	case sub == "/enable":
		routes = enableRoutes
	case len(pieces) < 2 || collections[pieces[1]] == nil:
		http.NotFound(w, r)
		return
	case len(pieces) == 2:
		routes = collections[pieces[1]]
	case len(pieces) == 3:
		routes, name = resources[pieces[1]], pieces[2]
	default:
		h.writeError(w, httpErr(http.StatusBadRequest, "Invalid path"))
		return
	}
	if f, ok := routes.Find(w, r); ok {
		if err := f(h, w, r, name); err != nil {
			h.writeError(w, err)
		}
	}
}

// asRoot is f for root only while auth is on.
func asRoot(f serve) serve {
	return func(h *Handler, w http.ResponseWriter, r *http.Request, name string) error {
		if err := h.requireRoot(r); err != nil {
			return err
		}
		return f(h, w, r, name)
	}
}

// requireRoot refuses, as 3.4 does while auth is on, a caller that is not
// the root user: v3 would let a user read itself and its roles, 3.4 does
// not. With auth off anyone may (credentials are then ignored).
func (h *Handler) requireRoot(r *http.Request) error {
	ctx, cancel := h.opts.Limits.Bound(r.Context())
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
	ctx, cancel := h.opts.Limits.Bound(r.Context())
	defer cancel()
	ac := etcdrpc.NewAuthClient(h.up.ClientConn())
	return h.tokens.Do(ctx, r, func(ctx context.Context) error { return fn(ctx, ac) })
}

// answer runs fn as the request's user and then answers status with out,
// which fn filled in, as JSON (no body when out is nil).
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, status int, out any, fn func(ctx context.Context, ac pb.AuthClient) error) error {
	if err := h.call(r, fn); err != nil {
		return err
	}
	if out == nil {
		v2edge.WriteEmpty(w, status)
	} else {
		v2edge.WriteJSON(w, status, out)
	}
	return nil
}

func (h *Handler) writeError(w http.ResponseWriter, err error) {
	v2edge.WriteError(w, err, h.opts.Logger)
}

// decode reads a JSON body, whole and within the limit, then decodes it.
func (h *Handler) decode(r *http.Request, v any) error {
	b, err := h.opts.Limits.ReadBody(r)
	if errors.Is(err, reqbody.ErrTooLarge) {
		return httpErr(http.StatusRequestEntityTooLarge, "Request body too large.")
	}
	// A decoder, as 3.4's: what follows the first JSON value is ignored.
	if err != nil || json.NewDecoder(bytes.NewReader(b)).Decode(v) != nil {
		return httpErr(http.StatusBadRequest, "Invalid JSON in request body.")
	}
	return nil
}

// decodeNamed decodes the body of a PUT to /v2/auth/<kind>s/<name>, which
// must name the same user or role.
func (h *Handler) decodeNamed(r *http.Request, v interface{ named() string }, kind, name string) error {
	if err := h.decode(r, v); err != nil {
		return err
	}
	if v.named() != name {
		return httpErr(http.StatusBadRequest, kind+" JSON name does not match the name in the URL")
	}
	return nil
}

// is reports whether err is etcd's error target (an rpctypes.ErrGRPC*).
func is(err, target error) bool { return etcderr.Is(err, target) }
