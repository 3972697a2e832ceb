package v2http

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/redact"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2auth"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2watch"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// LegacyRecorder notes which clients still use the v2 API.
type LegacyRecorder interface {
	Observe(r *http.Request, surface, user string)
}

// Credentials runs a store call as the request's v2 user.
type Credentials interface {
	Do(ctx context.Context, r *http.Request, call func(ctx context.Context) error) error
	Context(ctx context.Context, r *http.Request) (context.Context, string, error)
	IdentityOf(r *http.Request) v2auth.Identity
}

// Watcher answers wait=true requests; nil answers them with error 300.
type Watcher interface {
	ServeWatch(w http.ResponseWriter, r *http.Request, key string, recursive, stream bool, waitIndex uint64, writeHeaders func(w http.ResponseWriter, m v2store.Meta))
}

// Options configure the keys handler.
type Options struct {
	MaxRequestBytes int64
	// MaxKeyDepth and MaxKeyBytes bound a key's path components and
	// length (0: 512 and 65536); see SECURITY.md.
	MaxKeyDepth, MaxKeyBytes int
	// Timeout bounds one store write (3.4's request timeout is 5s plus a
	// margin per election; writes without quorum fail after it). Reads
	// are bounded by the store itself (v2store.DefaultTimeout).
	Timeout     time.Duration
	Credentials Credentials
	Legacy      LegacyRecorder
	Watcher     Watcher
	Logger      *zap.Logger
}

// Keys serves /v2/keys.
type Keys struct {
	opts      Options
	store     v2store.Store
	clusterID atomic.Pointer[clusterID] // last seen, for answers that reach no member
	// lastHeaders are the last success headers' values (writeHeaders).
	lastHeaders atomic.Pointer[headerValues]
	checks      singleflight.Group // watch delivery checks shared by waiters
}

// New returns the /v2/keys handler.
func New(opts Options, store v2store.Store) *Keys {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Timeout == 0 {
		opts.Timeout = v2store.DefaultTimeout
	}
	if opts.MaxRequestBytes == 0 {
		opts.MaxRequestBytes = 3 << 20
	}
	return &Keys{opts: opts, store: store}
}

func (k *Keys) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete:
	default:
		w.Header().Set("Allow", "HEAD,GET,PUT,POST,DELETE")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	k.setClusterID(w, 0)
	if r.ContentLength > k.opts.MaxRequestBytes {
		// Refused before anything is read or decoded; the same answer the
		// form parser gives a body that turns out too long.
		v2store.NewError(v2store.EcodeInvalidForm, "http: request body too large", 0).WriteTo(w)
		return
	}
	rq, perr := parseRequest(r, k.opts.MaxRequestBytes, keyLimits{depth: k.opts.MaxKeyDepth, bytes: k.opts.MaxKeyBytes})
	if perr != nil {
		perr.WriteTo(w)
		return
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && rq.key != "/" && strings.HasSuffix(r.URL.Path, "/") {
		// "/v2/keys/dir/": 3.4 checks grants against the path as written;
		// read only below the directory (v2store.Below).
		r = r.WithContext(v2store.Below(r.Context()))
	}
	if rq.wait && !rq.quorum {
		// 3.4 quirk kept: wait=true&quorum=true is a plain quorum GET.
		if k.opts.Watcher == nil {
			k.writeError(w, errors.New("watch is not available"))
			return
		}
		// The upstream watch runs as the shim; the client must be allowed
		// to read the key itself, as 3.4 checks before it waits.
		user, err := k.canReadAs(r, rq)
		k.observe(r, user)
		if err != nil {
			k.writeError(w, err)
			return
		}
		// And again before each event is delivered, as the client: events
		// are read under the shim's identity, and rights change.
		ctx := v2watch.WithCheck(r.Context(), k.deliveryCheck(r, rq))
		if k.opts.Credentials != nil {
			// Without the shim's own identity, a watch of the client's own.
			ctx = v2watch.WithDirect(ctx, func(ctx context.Context) (context.Context, error) {
				cctx, _, err := k.opts.Credentials.Context(ctx, r)
				return cctx, err
			})
		}
		r = r.WithContext(ctx)
		k.opts.Watcher.ServeWatch(w, r, rq.key, rq.recursive, rq.stream, rq.waitIndex, k.writeHeaders)
		return
	}
	var ev *v2store.Event
	var m v2store.Meta
	var user string
	call := func(ctx context.Context) error {
		user = v2auth.AuthenticatedUser(ctx)
		var err error
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			// The store times Get's member calls itself; a GET from the
			// read cache makes none.
			ev, m, err = k.store.Get(ctx, rq.key, v2store.GetOptions{Recursive: rq.recursive, Sorted: rq.sorted, Quorum: rq.quorum})
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
		defer cancel()
		switch r.Method {
		case http.MethodPut:
			ev, m, err = k.store.Put(ctx, rq.key, rq.setOptions())
		case http.MethodPost:
			ev, m, err = k.store.CreateInOrder(ctx, rq.key, rq.setOptions())
		case http.MethodDelete:
			ev, m, err = k.store.Delete(ctx, rq.key, v2store.DeleteOptions{Dir: rq.dir, Recursive: rq.recursive, PrevValue: rq.prevValue, PrevIndex: rq.prevIndex})
		}
		return err
	}
	var err error
	if k.opts.Credentials != nil {
		err = k.opts.Credentials.Do(r.Context(), r, call)
	} else {
		err = call(r.Context())
	}
	k.observe(r, user)
	k.setClusterID(w, m.ClusterID)
	if err != nil {
		k.writeError(w, err)
		return
	}
	k.writeEvent(w, ev, m, rq.noValueOnSuccess)
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
	check := func(ctx context.Context) error {
		user = v2auth.AuthenticatedUser(ctx)
		ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
		defer cancel()
		return k.store.CanRead(ctx, rq.key, rq.recursive)
	}
	if k.opts.Credentials == nil {
		return "", check(r.Context())
	}
	err := k.opts.Credentials.Do(r.Context(), r, check)
	return user, err
}

// deliveryCheck asks the member, as r's client, whether it may still read
// the watched key before the event at index is delivered. Waiters with the
// same credentials on the same key share one check per event: a thousand
// long polls woken by one write cost the member one range, not a thousand.
func (k *Keys) deliveryCheck(r *http.Request, rq *request) v2watch.Check {
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

func (k *Keys) setClusterID(w http.ResponseWriter, id uint64) {
	c := k.clusterID.Load()
	if id != 0 && (c == nil || c.id != id) {
		c = &clusterID{id: id, hex: []string{strconv.FormatUint(id, 16)}}
		k.clusterID.Store(c)
	}
	if c == nil {
		return
	}
	// The formatted value is shared: header values are only read once set.
	// Set once: a v2 answer has 8 headers when writeHeaders sets this again,
	// and a Go map of 8 keys grows to a hashed table on any assignment, even
	// of a key it holds (about 1 KB per answer).
	h := w.Header()
	if v := h["X-Etcd-Cluster-Id"]; len(v) == 1 && v[0] == c.hex[0] {
		return
	}
	h["X-Etcd-Cluster-Id"] = c.hex
}

// headerValues are the success headers' values for one set of numbers.
type headerValues struct {
	etcd, raft, term uint64
	v                []string // Content-Type, X-Etcd-Index, X-Raft-Index, X-Raft-Term
}

func newHeaderValues(m v2store.Meta) *headerValues {
	var nb [64]byte
	b := strconv.AppendUint(nb[:0], m.EtcdIndex, 10)
	i1 := len(b)
	b = strconv.AppendUint(b, m.RaftIndex, 10)
	i2 := len(b)
	b = strconv.AppendUint(b, m.RaftTerm, 10)
	nums := string(b)
	return &headerValues{etcd: m.EtcdIndex, raft: m.RaftIndex, term: m.RaftTerm,
		v: []string{"application/json", nums[:i1], nums[i1:i2], nums[i2:]}}
}

// clusterID is the last cluster ID seen and its header value.
type clusterID struct {
	id  uint64
	hex []string
}

// writeHeaders sets the success headers (also used by watches).
func (k *Keys) writeHeaders(w http.ResponseWriter, m v2store.Meta) {
	h := w.Header()
	// One string and one slice for the three numbers, instead of a
	// conversion and a slice per header; shared with the next answers
	// while the numbers stay the same (reads between writes).
	hv := k.lastHeaders.Load()
	if hv == nil || hv.etcd != m.EtcdIndex || hv.raft != m.RaftIndex || hv.term != m.RaftTerm {
		hv = newHeaderValues(m)
		k.lastHeaders.Store(hv)
	}
	v := hv.v
	h["Content-Type"] = v[0:1:1]
	h["X-Etcd-Index"] = v[1:2:2]
	h["X-Raft-Index"] = v[2:3:3]
	h["X-Raft-Term"] = v[3:4:4]
	k.setClusterID(w, m.ClusterID)
}

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

// writeError maps errors to v2's shape at the edge: v2 conditions as they
// are, refused credentials as 110, anything else as 300 with its cause.
func (k *Keys) writeError(w http.ResponseWriter, err error) {
	var ve *v2store.Error
	switch {
	case errors.As(err, &ve):
	case errors.Is(err, v2auth.ErrBadCredentials) || isDenied(err):
		k.opts.Logger.Debug("v2 request refused by the member", zap.Error(err))
		ve = v2store.NewError(v2store.EcodeUnauthorized, "Insufficient credentials", 0)
	default:
		if !errors.Is(err, context.Canceled) {
			k.opts.Logger.Warn("v2 request failed upstream", zap.Error(err))
		}
		ve = v2store.NewError(v2store.EcodeRaftInternal, upstreamCause(err), 0)
	}
	ve.WriteTo(w)
}

// isDenied: the member refused the identity or its rights (by gRPC code and
// etcd's errors, however wrapped).
func isDenied(err error) bool { return etcderr.Denied(err) }

// upstreamCause says what failed in words a v2 client can log, without the
// members' addresses (the log keeps them).
func upstreamCause(err error) string {
	if st := etcderr.Status(err); st != nil {
		return redact.Cause(st.Message())
	}
	return redact.Cause(err.Error())
}
