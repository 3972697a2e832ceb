package v2http

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2auth"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// LegacyRecorder notes which clients still use the v2 API.
type LegacyRecorder interface {
	Observe(r *http.Request, surface, user string)
}

// Credentials runs a store call as the request's v2 user (v2auth.Tokens).
type Credentials interface {
	Do(ctx context.Context, r *http.Request, call func(ctx context.Context) error) error
	Context(ctx context.Context, r *http.Request) (context.Context, string, error)
}

// Watches hands out v2 watches (v2watch.Hub): ctx carries the client's
// credentials, for a watch that runs as the client. Errors are
// *v2store.Error for v2 conditions, else mapped as the store's are.
type Watches interface {
	Watch(ctx context.Context, key string, o v2store.WatchOptions) (v2store.Watcher, v2store.Meta, error)
}

// Options configure the keys handler.
type Options struct {
	// Limits bound a request body and one store write (3.4's request
	// timeout is 5s plus a margin per election; writes without quorum fail
	// after it). Reads are bounded by the store itself.
	Limits v2edge.Limits
	// MaxKeyDepth and MaxKeyBytes bound a key's path components and
	// length (0: 512 and 65536); see SECURITY.md.
	MaxKeyDepth, MaxKeyBytes int
	Credentials              Credentials
	Legacy                   LegacyRecorder
	// Watches answers wait=true requests; nil answers them with error
	// 300.
	Watches Watches
	Logger  *zap.Logger
}

// Keys serves /v2/keys.
type Keys struct {
	opts    Options
	store   v2store.Store
	headers v2edge.Headers
	checks  singleflight.Group // watch delivery checks shared by waiters
}

// New returns the /v2/keys handler.
func New(opts Options, store v2store.Store) *Keys {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	opts.Limits = opts.Limits.OrDefaults()
	return &Keys{opts: opts, store: store}
}

// op is one method's store call.
type op func(k *Keys, ctx context.Context, rq *request) (*v2store.Event, v2store.Meta, error)

var keyRoutes = v2edge.NewRouter(
	v2edge.On(http.MethodHead, (*Keys).get),
	v2edge.On(http.MethodGet, (*Keys).get),
	v2edge.On(http.MethodPut, (*Keys).put),
	v2edge.On(http.MethodPost, (*Keys).createInOrder),
	v2edge.On(http.MethodDelete, (*Keys).delete))

func (k *Keys) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call, ok := keyRoutes.Find(w, r)
	if !ok {
		return
	}
	k.headers.ClusterID(w, 0)
	if k.opts.Limits.DeclaresTooMuch(r) {
		// Refused before anything is read or decoded; the same answer the
		// form parser gives a body that turns out too long.
		v2edge.WriteV2Error(w, v2store.NewError(v2store.EcodeInvalidForm, "http: request body too large", 0))
		return
	}
	rq, perr := parseRequest(r, k.opts.Limits.MaxRequestBytes, keyLimits{depth: k.opts.MaxKeyDepth, bytes: k.opts.MaxKeyBytes})
	if perr != nil {
		v2edge.WriteV2Error(w, perr)
		return
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && rq.key != "/" && strings.HasSuffix(r.URL.Path, "/") {
		// "/v2/keys/dir/": 3.4 checks grants against the path as written;
		// read only below the directory (v2store.Below).
		r = r.WithContext(v2store.Below(r.Context()))
	}
	if rq.wait && !rq.quorum {
		// 3.4 quirk kept: wait=true&quorum=true is a plain quorum GET.
		k.serveWatch(w, r, rq)
		return
	}
	k.serve(w, r, rq, call)
}

// serve runs one method's store call as the request's client and answers
// its event.
func (k *Keys) serve(w http.ResponseWriter, r *http.Request, rq *request, call op) {
	// What the call returns, in one object the closure fills (three
	// captured variables would each move to the heap).
	var res struct {
		ev   *v2store.Event
		m    v2store.Meta
		user string
	}
	err := k.as(r, func(ctx context.Context) (err error) {
		res.user = v2auth.AuthenticatedUser(ctx)
		res.ev, res.m, err = call(k, ctx, rq)
		return err
	})
	k.observe(r, res.user)
	k.headers.ClusterID(w, res.m.ClusterID)
	if err != nil {
		k.writeError(w, err)
		return
	}
	k.writeEvent(w, res.ev, res.m, rq.noValueOnSuccess)
}

// get reads a key. The store times its member calls itself: a GET the read
// cache answers makes none.
func (k *Keys) get(ctx context.Context, rq *request) (*v2store.Event, v2store.Meta, error) {
	return k.store.Get(ctx, rq.key, v2store.GetOptions{Recursive: rq.recursive, Sorted: rq.sorted, Quorum: rq.quorum})
}

func (k *Keys) put(ctx context.Context, rq *request) (*v2store.Event, v2store.Meta, error) {
	ctx, cancel := k.opts.Limits.Bound(ctx)
	defer cancel()
	return k.store.Put(ctx, rq.key, rq.setOptions())
}

func (k *Keys) createInOrder(ctx context.Context, rq *request) (*v2store.Event, v2store.Meta, error) {
	ctx, cancel := k.opts.Limits.Bound(ctx)
	defer cancel()
	return k.store.CreateInOrder(ctx, rq.key, rq.setOptions())
}

func (k *Keys) delete(ctx context.Context, rq *request) (*v2store.Event, v2store.Meta, error) {
	ctx, cancel := k.opts.Limits.Bound(ctx)
	defer cancel()
	return k.store.Delete(ctx, rq.key, v2store.DeleteOptions{Dir: rq.dir, Recursive: rq.recursive, PrevValue: rq.prevValue, PrevIndex: rq.prevIndex})
}

// as runs call as r's client (as the shim without Credentials).
func (k *Keys) as(r *http.Request, call func(ctx context.Context) error) error {
	if k.opts.Credentials == nil {
		return call(r.Context())
	}
	return k.opts.Credentials.Do(r.Context(), r, call)
}

// observe tells the legacy-client tracker about a request, with the user it
// authenticated as ("" when it did not: a claimed name is not recorded).
func (k *Keys) observe(r *http.Request, user string) {
	if k.opts.Legacy != nil {
		k.opts.Legacy.Observe(r, "v2", user)
	}
}

// canRead checks that the client may read the watched key.
func (k *Keys) canRead(r *http.Request, rq *request) error {
	_, err := k.canReadAs(r, rq)
	return err
}

// canReadAs is canRead that also says which user the request authenticated
// as.
func (k *Keys) canReadAs(r *http.Request, rq *request) (string, error) {
	var user string
	err := k.as(r, func(ctx context.Context) error {
		user = v2auth.AuthenticatedUser(ctx)
		ctx, cancel := k.opts.Limits.Bound(ctx)
		defer cancel()
		return k.store.CanRead(ctx, rq.key, rq.recursive)
	})
	return user, err
}

// deliveryCheck asks the member, as r's client, whether it may still read
// the watched key before the event at index is delivered. Waiters with the
// same credentials on the same key share one check per event: a thousand
// long polls woken by one write cost the member one range, not a thousand.
func (k *Keys) deliveryCheck(r *http.Request, rq *request) func(ctx context.Context, index uint64) error {
	id := sha256.Sum256([]byte(r.Header.Get("Authorization")))
	prefix := string(id[:]) + "\x00" + strconv.FormatBool(rq.recursive) + strconv.FormatBool(strings.HasSuffix(r.URL.Path, "/")) +
		"\x00" + rq.key + "\x00"
	return func(ctx context.Context, index uint64) error {
		_, err, _ := k.checks.Do(prefix+strconv.FormatUint(index, 10), func() (any, error) {
			// Not the waiter's context: a shared check must not end when
			// the first of its waiters goes away.
			return nil, k.canRead(r.WithContext(context.WithoutCancel(ctx)), rq)
		})
		return err
	}
}

func (rq *request) setOptions() v2store.SetOptions {
	return v2store.SetOptions{Value: rq.value, Dir: rq.dir, TTL: rq.ttl, Refresh: rq.refresh,
		PrevExist: rq.prevExist, PrevValue: rq.prevValue, PrevIndex: rq.prevIndex}
}

// writeHeaders sets the success headers (also the watches').
func (k *Keys) writeHeaders(w http.ResponseWriter, m v2store.Meta) { k.headers.Meta(w, m) }

func (k *Keys) writeEvent(w http.ResponseWriter, ev *v2store.Event, m v2store.Meta, noValueOnSuccess bool) {
	k.writeHeaders(w, m)
	if ev.IsCreated() {
		w.WriteHeader(http.StatusCreated)
	}
	if noValueOnSuccess {
		switch ev.Action {
		case v2store.ActionSet, v2store.ActionUpdate, v2store.ActionCreate, v2store.ActionCompareAndSwap:
			ev = &v2store.Event{Action: ev.Action}
		}
	}
	bp := bufPool.Get().(*[]byte)
	b, ok := appendEvent((*bp)[:0], ev)
	if ok {
		_, _ = w.Write(b)
	} else {
		_ = json.NewEncoder(w).Encode(ev)
	}
	if cap(b) <= 64<<10 {
		// Large listings are not kept: one would pin its buffer forever.
		*bp = b[:0]
		bufPool.Put(bp)
	}
}

func (k *Keys) writeError(w http.ResponseWriter, err error) {
	v2edge.WriteKeysError(w, err, k.opts.Logger)
}
