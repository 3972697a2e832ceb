package v2auth

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Upstream is the proxy's connection picker.
type Upstream interface {
	ClientConn() grpc.ClientConnInterface
}

// ErrBadCredentials means the member refused the request's credentials;
// v2 answers it with error 110 (401).
var ErrBadCredentials = errors.New("insufficient credentials")

// Tokens caches v3 tokens per v2 credential.
type Tokens struct {
	up            Upstream
	guestUser     string
	guestPassword string
	max           int
	markAnonymous bool

	mu    sync.Mutex
	lru   *list.List // of *entry, most recent first
	byKey map[[32]byte]*list.Element
}

type entry struct {
	key   [32]byte
	user  string
	token string
}

// NewTokens returns a cache of at most max tokens. guestUser (with its
// password) is used for anonymous requests when set.
func NewTokens(up Upstream, guestUser, guestPassword string, max int) *Tokens {
	if max <= 0 {
		max = 1024
	}
	return &Tokens{up: up, guestUser: guestUser, guestPassword: guestPassword, max: max,
		lru: list.New(), byKey: map[[32]byte]*list.Element{}}
}

// MarkAnonymous makes anonymous requests carry AnonymousToken; the shim
// turns it on when it presents a client certificate to the members.
func (t *Tokens) MarkAnonymous() { t.markAnonymous = true }

// Identity is who a v2 request runs as.
type Identity struct {
	User, Password string
	Anonymous      bool // no credentials (guest, if configured)
	Malformed      bool // an Authorization header that is not Basic
}

// IdentityOf reads a request's Basic credentials.
func (t *Tokens) IdentityOf(r *http.Request) Identity {
	if r.Header.Get("Authorization") == "" {
		if t.guestUser != "" {
			return Identity{User: t.guestUser, Password: t.guestPassword, Anonymous: true}
		}
		return Identity{Anonymous: true}
	}
	u, p, ok := r.BasicAuth()
	if !ok {
		return Identity{Malformed: true}
	}
	return Identity{User: u, Password: p}
}

// Context returns ctx carrying the v3 token for r's credentials (none for
// an anonymous request without a guest user, or when auth is off).
func (t *Tokens) Context(ctx context.Context, r *http.Request) (context.Context, string, error) {
	id := t.IdentityOf(r)
	if id.Malformed {
		return nil, "", ErrBadCredentials
	}
	if id.User == "" {
		if t.markAnonymous {
			return Anonymous(ctx), "", nil
		}
		return ctx, "", nil
	}
	tok, err := t.token(ctx, id, false)
	if err != nil {
		return nil, id.User, err
	}
	if tok == "" {
		return ctx, id.User, nil
	}
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, tok), id.User, nil
}

// AnonymousToken marks a request made for a client without credentials.
// Without any token a member that verifies client certificates would
// authenticate the request as the shim's own certificate (its CN); a token
// the member does not know makes it refuse such requests when auth is on,
// and is ignored when auth is off.
const AnonymousToken = "etcdshim-anonymous"

// Anonymous marks ctx as an anonymous client's request.
func Anonymous(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, AnonymousToken)
}

// Do runs call with r's token and retries once with a fresh token when the
// member says the cached one is no longer valid.
func (t *Tokens) Do(ctx context.Context, r *http.Request, call func(ctx context.Context) error) error {
	cctx, _, err := t.Context(ctx, r)
	if err != nil {
		return err
	}
	err = call(cctx)
	if !isInvalidToken(err) {
		return err
	}
	id := t.IdentityOf(r)
	t.forget(id)
	if id.User == "" {
		return err
	}
	tok, terr := t.token(ctx, id, true)
	if terr != nil {
		return terr
	}
	return call(metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, tok))
}

func isInvalidToken(err error) bool {
	return err != nil && (status.Code(err) == codes.Unauthenticated ||
		strings.Contains(err.Error(), rpctypes.ErrGRPCInvalidAuthToken.Error()))
}

func credKey(id Identity) [32]byte {
	return sha256.Sum256([]byte(id.User + "\x00" + id.Password))
}

func (t *Tokens) token(ctx context.Context, id Identity, fresh bool) (string, error) {
	k := credKey(id)
	if !fresh {
		t.mu.Lock()
		if el, ok := t.byKey[k]; ok {
			t.lru.MoveToFront(el)
			tok := el.Value.(*entry).token
			t.mu.Unlock()
			return tok, nil
		}
		t.mu.Unlock()
	}
	resp, err := etcdrpc.NewAuthClient(t.up.ClientConn()).Authenticate(ctx, &pb.AuthenticateRequest{Name: id.User, Password: id.Password})
	switch {
	case err == nil:
	case strings.Contains(err.Error(), rpctypes.ErrGRPCAuthNotEnabled.Error()):
		// Auth is off: 3.4 ignores credentials then, and so does the shim.
		return "", nil
	case strings.Contains(err.Error(), rpctypes.ErrGRPCAuthFailed.Error()):
		return "", ErrBadCredentials
	default:
		return "", err
	}
	t.store(k, id.User, resp.Token)
	return resp.Token, nil
}

// store caches a token, evicting the least recently used beyond max.
func (t *Tokens) store(k [32]byte, user, token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.byKey[k]; ok {
		el.Value.(*entry).token = token
		t.lru.MoveToFront(el)
		return
	}
	t.byKey[k] = t.lru.PushFront(&entry{key: k, user: user, token: token})
	for t.lru.Len() > t.max {
		old := t.lru.Back()
		t.lru.Remove(old)
		delete(t.byKey, old.Value.(*entry).key)
	}
}

func (t *Tokens) forget(id Identity) {
	k := credKey(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.byKey[k]; ok {
		t.lru.Remove(el)
		delete(t.byKey, k)
	}
}

// Len is the number of cached tokens.
func (t *Tokens) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
