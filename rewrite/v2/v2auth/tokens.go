package v2auth

import (
	"container/list"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/internal/ctxtime"
	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Upstream is the proxy's connection picker.
type Upstream interface {
	ClientConn() grpc.ClientConnInterface
}

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
	// authenticating are the Authenticate calls in flight per credential:
	// requests that find the same token missing or expired share one
	// (bcrypt on the member, a raft round trip) instead of each sending
	// its own, as every client of a user does after the TTL passed.
	authenticating map[[32]byte]*authCall
	// refreshing are the tokens whose user's scope is being read again.
	refreshing map[string]bool

	// The background reads of scopes run on bg and are waited for by Run
	// when the shim stops, so none outlives it.
	bg         context.Context
	stopBg     context.CancelFunc
	background sync.WaitGroup
}

// authCall is one Authenticate (and permissions read) shared by the
// requests that need a token for the same credentials.
type authCall struct {
	done chan struct{}
	e    entry
	err  error
}

type entry struct {
	key   [32]byte
	user  string
	token string
	// scope is the user's v3 permissions when the token was issued (nil:
	// unrestricted, as root), fetched with the token.
	scope   *Scope
	root    bool
	fetched time.Time
}

// scopeMaxAge is how long a user's permissions are used before they are
// read again (in the background: token). A stale scope only changes which
// checks the store makes: the member enforces the permissions of the moment
// on every request.
const scopeMaxAge = 10 * time.Second

// NewTokens returns a cache of at most max tokens. guestUser (with its
// password) is used for anonymous requests when set.
func NewTokens(up Upstream, guestUser, guestPassword string, max int) *Tokens {
	if max <= 0 {
		max = 1024
	}
	bg, stop := context.WithCancel(context.Background())
	return &Tokens{up: up, guestUser: guestUser, guestPassword: guestPassword, max: max,
		lru: list.New(), byKey: map[[32]byte]*list.Element{}, authenticating: map[[32]byte]*authCall{},
		refreshing: map[string]bool{}, bg: bg, stopBg: stop}
}

// inBackground runs f on a goroutine that Run waits for, unless Run is
// stopping them: then it runs nothing and returns false. t.mu is held.
func (t *Tokens) inBackground(f func()) bool {
	if t.bg.Err() != nil {
		return false
	}
	t.background.Go(f)
	return true
}

// Run returns when ctx ends, once the background reads of scopes have
// stopped; none starts after that.
func (t *Tokens) Run(ctx context.Context) error {
	<-ctx.Done()
	t.mu.Lock()
	t.stopBg()
	t.mu.Unlock()
	t.background.Wait()
	return nil
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
		return nil, "", etcderr.ErrBadCredentials
	}
	if id.User == "" {
		if t.markAnonymous {
			return Anonymous(ctx), "", nil
		}
		return ctx, "", nil
	}
	e, err := t.token(ctx, id, "")
	if err != nil {
		return nil, id.User, err
	}
	if e.token == "" {
		return ctx, id.User, nil
	}
	ctx = context.WithValue(ctx, identityKey{}, id)
	ctx = context.WithValue(ctx, callerKey{}, caller{root: e.root})
	if e.scope != nil {
		ctx = v2store.WithScope(ctx, e.scope)
	}
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, e.token), id.User, nil
}

// identityKey marks a context made by Context with the identity whose
// token it carries, so that Upstream can renew that token.
type identityKey struct{}

// callerKey marks a context made by Context for an authenticated user
// (auth is on) with what the v2 auth API asks of it.
type callerKey struct{}

type caller struct{ root bool }

// Root reports whether ctx (from Context) runs as a user with the root
// role, and whether it runs as an authenticated user at all (auth is on).
func Root(ctx context.Context) (root, authenticated bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	return c.root, ok
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

// Do runs call as r's user. The token is renewed by the connection (see
// Upstream), call by call, so a handler making several calls needs nothing
// of its own.
func (t *Tokens) Do(ctx context.Context, r *http.Request, call func(ctx context.Context) error) error {
	cctx, _, err := t.Context(ctx, r)
	if err != nil {
		return err
	}
	return call(cctx)
}

// Upstream wraps up so that every unary call made with a context from
// Context is retried once with a fresh token when the member says the
// token is invalid (expired: simple tokens live --auth-token-ttl; unknown
// to a restarted member) or older than the auth store. This is the one
// credential path of the v2 handlers: keys, watch checks, members,
// machines, stats and auth all reach the member through it. Retrying is
// safe: the member refuses such a request before applying it.
func (t *Tokens) Upstream(up Upstream) Upstream { return renewingUpstream{up: up, t: t} }

type renewingUpstream struct {
	up Upstream
	t  *Tokens
}

func (u renewingUpstream) ClientConn() grpc.ClientConnInterface {
	return renewingConn{ClientConnInterface: u.up.ClientConn(), t: u.t}
}

type renewingConn struct {
	grpc.ClientConnInterface
	t *Tokens
}

func (c renewingConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	err := c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
	if err == nil || !etcderr.InvalidToken(err) {
		return err
	}
	id, ok := ctx.Value(identityKey{}).(Identity)
	if !ok {
		return err
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	stale := ""
	if v := md.Get(rpctypes.TokenFieldNameGRPC); len(v) > 0 {
		stale = v[len(v)-1]
	}
	e, terr := c.t.token(ctx, id, stale)
	if terr != nil {
		return terr
	}
	pause := freshTokenWait
	for i := 0; ; i++ {
		err = c.ClientConnInterface.Invoke(withToken(ctx, e.token), method, args, reply, opts...)
		// A token just issued and refused. Either the member serving
		// this call has not applied its Authenticate yet (each member
		// assigns a simple token when it applies the raft entry, and the
		// call may go to another member than the Authenticate did: writes
		// go to the leader, the pool may have switched), or the token
		// already expired there: on an overloaded machine more than
		// --auth-token-ttl can pass between the Authenticate and this
		// call. The refusal is definite (nothing was applied), so the
		// call is tried again after a pause that grows, first with the
		// same token (freshTokenKeep times), then with a new one each
		// time (shared with the other requests that had it refused),
		// until the request's deadline or freshTokenRetries, rather than
		// answer a client whose credentials are good with 110.
		if err == nil || !etcderr.InvalidToken(err) || i == freshTokenRetries || !ctxtime.Sleep(ctx, pause) {
			return err
		}
		pause = min(2*pause, freshTokenMaxWait)
		if i >= freshTokenKeep {
			if e, terr = c.t.token(ctx, id, e.token); terr != nil {
				return terr
			}
		}
	}
}

// A fresh token the member refused is tried again up to freshTokenRetries
// times, freshTokenWait after the refusal, then twice as long each time up
// to freshTokenMaxWait (about 5 s in all, within a v2 request's 10 s): a
// member applies an entry within milliseconds of its commit unless it, or
// the machine, is overloaded.
const (
	freshTokenRetries = 8
	freshTokenKeep    = 2
	freshTokenWait    = 100 * time.Millisecond
	freshTokenMaxWait = time.Second
)

// withToken is ctx carrying token instead of any token it carried.
func withToken(ctx context.Context, token string) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(rpctypes.TokenFieldNameGRPC, token)
	return metadata.NewOutgoingContext(ctx, md)
}

func credKey(id Identity) [32]byte {
	return sha256.Sum256([]byte(id.User + "\x00" + id.Password))
}

// token returns id's cached token, or authenticates. stale is a token the
// member refused: it is replaced, unless another request has replaced it
// already (then that newer token is returned).
//
// Nothing but a missing or refused token makes a request wait for the
// member: a scope older than scopeMaxAge is read again in the background
// (the user's UserGet and RoleGet are raft requests in etcd, a quorum's
// disk writes each), and the request goes on with the one it has.
func (t *Tokens) token(ctx context.Context, id Identity, stale string) (entry, error) {
	k := credKey(id)
	t.mu.Lock()
	var prev *entry
	if el, ok := t.byKey[k]; ok {
		e := el.Value.(*entry)
		if stale == "" || e.token != stale {
			t.lru.MoveToFront(el)
			cp := *e
			t.mu.Unlock()
			t.refreshScope(id, cp)
			return cp, nil
		}
		cp := *e
		prev = &cp
		t.lru.Remove(el)
		delete(t.byKey, k)
	}
	t.mu.Unlock()
	return t.authenticate(ctx, id, k, prev)
}

// refreshScope reads e's user's permissions again when they are older
// than scopeMaxAge, once at a time per token, and keeps them if e's token
// is still the cached one. A token the member refuses meanwhile is
// dropped: the next request authenticates.
func (t *Tokens) refreshScope(id Identity, e entry) {
	if e.token == "" || time.Since(e.fetched) < scopeMaxAge {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refreshing[e.token] {
		return
	}
	// The read takes t.mu when it ends, after this call released it.
	t.refreshing[e.token] = t.inBackground(func() {
		ctx, cancel := context.WithTimeout(t.bg, authTimeout)
		sc, root, err := fetchScope(withToken(ctx, e.token), etcdrpc.NewAuthClient(t.up.ClientConn()), id.User)
		cancel()
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.refreshing, e.token)
		el, ok := t.byKey[e.key]
		if !ok || el.Value.(*entry).token != e.token {
			return // replaced meanwhile: its scope is newer
		}
		cur := el.Value.(*entry)
		switch {
		case err == nil:
			cur.scope, cur.root, cur.fetched = sc, root, time.Now()
		case etcderr.InvalidToken(err):
			t.lru.Remove(el)
			delete(t.byKey, e.key)
		default:
			// The member could not answer: the scope is read again
			// after another scopeMaxAge, not on every request.
			cur.fetched = time.Now()
		}
	})
}

// authTimeout bounds a shared Authenticate, which outlives the request
// that started it (v2store.DefaultTimeout, a v2 request's own bound).
const authTimeout = v2store.DefaultTimeout

// authenticate gets a new token for id, sharing the call with every
// request that needs one for the same credentials meanwhile. Each waits
// until its own context ends at most. prev is the entry whose token the
// member refused, if any: its scope goes on with the new token when it is
// recent (scopeReuse), read again in the background.
func (t *Tokens) authenticate(ctx context.Context, id Identity, k [32]byte, prev *entry) (entry, error) {
	t.mu.Lock()
	c, joined := t.authenticating[k]
	if !joined {
		c = &authCall{done: make(chan struct{})}
		t.authenticating[k] = c
		started := t.inBackground(func() {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), authTimeout)
			stop := context.AfterFunc(t.bg, cancel)
			c.e, c.err = t.authenticateOnce(actx, id, k, prev)
			stop()
			cancel()
			t.mu.Lock()
			delete(t.authenticating, k)
			t.mu.Unlock()
			close(c.done)
		})
		if !started {
			delete(t.authenticating, k)
			c.err = status.FromContextError(context.Canceled).Err()
			close(c.done)
		}
	}
	t.mu.Unlock()
	select {
	case <-c.done:
		return c.e, c.err
	case <-ctx.Done():
		return entry{}, status.FromContextError(ctx.Err()).Err()
	}
}

// scopeReuse is how old a refused token's scope may be to go on with its
// renewal: a token that expires while its user is busy is renewed with one
// raft round trip, not three (Authenticate, UserGet, RoleGet).
const scopeReuse = time.Minute

func (t *Tokens) authenticateOnce(ctx context.Context, id Identity, k [32]byte, prev *entry) (entry, error) {
	resp, err := etcdrpc.NewAuthClient(t.up.ClientConn()).Authenticate(ctx, &pb.AuthenticateRequest{Name: id.User, Password: id.Password})
	switch {
	case err == nil:
	case etcderr.Is(err, rpctypes.ErrGRPCAuthNotEnabled):
		// Auth is off: 3.4 ignores credentials then, and so does the shim.
		return entry{}, nil
	case etcderr.Is(err, rpctypes.ErrGRPCAuthFailed):
		return entry{}, etcderr.ErrBadCredentials
	default:
		return entry{}, err
	}
	if prev != nil && prev.token != "" && time.Since(prev.fetched) < scopeReuse {
		e := entry{key: k, user: id.User, token: resp.Token, scope: prev.scope, root: prev.root, fetched: prev.fetched}
		t.store(e)
		t.refreshScope(id, e)
		return e, nil
	}
	sc, root, err := fetchScope(withToken(ctx, resp.Token),
		etcdrpc.NewAuthClient(t.up.ClientConn()), id.User)
	if err != nil {
		return entry{}, fmt.Errorf("reading the permissions of %s: %w", id.User, err)
	}
	e := entry{key: k, user: id.User, token: resp.Token, scope: sc, root: root, fetched: time.Now()}
	t.store(e)
	return e, nil
}

// store caches a token, evicting the least recently used beyond max.
func (t *Tokens) store(e entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.byKey[e.key]; ok {
		*el.Value.(*entry) = e
		t.lru.MoveToFront(el)
		return
	}
	t.byKey[e.key] = t.lru.PushFront(&e)
	for t.lru.Len() > t.max {
		old := t.lru.Back()
		t.lru.Remove(old)
		delete(t.byKey, old.Value.(*entry).key)
	}
}

// Len is the number of cached tokens.
func (t *Tokens) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
