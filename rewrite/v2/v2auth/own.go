package v2auth

import (
	"context"
	"errors"
	"net/http"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"
)

// Own is the shim's own identity (--user, --password) for its background
// work with auth on: the v2 follower's upstream watch. It is never applied
// to a client's request; what it reads reaches a client only after the
// member has confirmed, with the client's own token, that the client may
// read it (see v2http's watch checks).
type Own struct {
	t  *Tokens
	id Identity
}

// Own returns the identity user:password, or nil when user is empty.
func (t *Tokens) Own(user, password string) *Own {
	if user == "" {
		return nil
	}
	return &Own{t: t, id: Identity{User: user, Password: password}}
}

// ErrOwnCredentials means the member refused the shim's own credentials.
var ErrOwnCredentials = errors.New("the member refused the shim's --user credentials")

// Context returns ctx carrying the shim's token (none while auth is off).
// Unary calls on a connection from Tokens.Upstream renew it themselves.
func (o *Own) Context(ctx context.Context) (context.Context, error) {
	e, err := o.t.token(ctx, o.id, "")
	if errors.Is(err, etcderr.ErrBadCredentials) {
		return nil, ErrOwnCredentials
	}
	if err != nil || e.token == "" {
		return ctx, err
	}
	return withToken(context.WithValue(ctx, identityKey{}, o.id), e.token), nil
}

// Renew replaces the token used carried after the member refused it (a
// stream, which the connection does not retry).
func (o *Own) Renew(ctx, used context.Context, err error) {
	if !etcderr.InvalidToken(err) {
		return
	}
	md, _ := metadata.FromOutgoingContext(used)
	if v := md.Get(rpctypes.TokenFieldNameGRPC); len(v) > 0 {
		_, _ = o.t.token(ctx, o.id, v[len(v)-1])
	}
}

// PublicContext is the context for a request 3.4 answers to anyone and
// whose credentials it ignores (GET /v2/members, /v2/machines,
// /v2/stats/*). etcd 3.6 and later list members and report status only to
// an authenticated user, so with auth on such a read runs as the shim's own
// user when there is one (what it returns is what 3.4 showed everyone);
// otherwise as the client, and a refused password counts as none.
func (t *Tokens) PublicContext(ctx context.Context, r *http.Request, own *Own) (context.Context, error) {
	if own != nil {
		return own.Context(ctx)
	}
	cctx, _, err := t.Context(ctx, r)
	if errors.Is(err, etcderr.ErrBadCredentials) {
		return ctx, nil
	}
	return cctx, err
}
