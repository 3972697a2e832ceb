package v2watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/internal/ctxtime"
	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Upstream is the proxy's connection picker.
type Upstream interface {
	ClientConn() grpc.ClientConnInterface
}

// Options configure the hub.
type Options struct {
	Prefix  string
	History int // events kept for waitIndex (3.4: 1000)
	// Identity is the shim's own identity (--user) for the upstream watch
	// and the store-index reads; nil: none (the hub then works only while
	// auth is off).
	Identity   Identity
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// Identity gives the hub's own calls the shim's credentials.
type Identity interface {
	Context(ctx context.Context) (context.Context, error)
	// Renew replaces the token used carried when err says the member no
	// longer accepts it.
	Renew(ctx, used context.Context, err error)
}

// Check confirms with the member, as the waiting client, that the client
// may read what it waits for, before an event read under the shim's
// identity is delivered; index is the event's.
type Check func(ctx context.Context, index uint64) error

type checkKey struct{}

// WithCheck makes ServeWatch run check before it delivers each event.
func WithCheck(ctx context.Context, check Check) context.Context {
	return context.WithValue(ctx, checkKey{}, check)
}

// ErrNeedsIdentity answers v2 watches while auth keeps the hub from
// following the keyspace: it names what to configure.
var ErrNeedsIdentity = errors.New("v2 watches need the shim's own v3 identity while auth is on: set --user (and --password or ETCDSHIM_PASSWORD) to a v3 user with read permission on the v2 keyspace (the v3 prefix <--v2-prefix>/), see docs/v2.md")

// startWait bounds how long a watch waits for the hub's first read of the
// store index before it is answered with the reason it is not ready.
const startWait = 3 * time.Second

// waiterBuffer is how many undelivered events a streaming watcher may have
// before it is closed, as 3.4 closes a watcher whose 100-event channel fills.
const waiterBuffer = 100

type waiter struct {
	key       string
	recursive bool
	since     uint64
	stream    bool
	ch        chan *event
	closed    bool
}

// Hub fans one upstream v3 watch out to every v2 waiter.
type Hub struct {
	opts Options
	up   Upstream
	log  *zap.Logger
	m    *metrics

	mu      sync.Mutex
	ring    []*event // oldest first, at most opts.History
	oldest  uint64   // smallest index a waitIndex may ask for
	current uint64   // the store index: every event up to it has been seen
	waiters map[*waiter]struct{}
	ready   chan struct{}
	// authErr is why the upstream watch is refused (auth on, no or
	// too small an identity); nil while it runs.
	authErr error
}

type metrics struct {
	waiters, streams prometheus.Gauge
	events, evicted  prometheus.Counter
	restarts         prometheus.Counter
}

// New returns a hub; Run starts its upstream watch.
func New(opts Options, up Upstream) *Hub {
	if opts.History <= 0 {
		opts.History = 1000
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	m := &metrics{
		waiters:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcdshim_v2_watch_waiters", Help: "v2 watch requests waiting (long polls and streams)."}),
		streams:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcdshim_v2_watch_streams", Help: "v2 streaming watches (stream=true) open."}),
		events:   prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_v2_watch_events_fanned_out_total", Help: "v2 events delivered to waiters."}),
		evicted:  prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_v2_watch_history_evictions_total", Help: "v2 events dropped from the waitIndex history."}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_v2_watch_upstream_restarts_total", Help: "Times the upstream v3 watch was re-established."}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.waiters, m.streams, m.events, m.evicted, m.restarts)
	}
	return &Hub{opts: opts, up: up, log: opts.Logger, m: m, waiters: map[*waiter]struct{}{}, ready: make(chan struct{})}
}

// Run keeps the upstream watch going until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := h.start(ctx); err != nil {
			h.log.Warn("v2 watch hub cannot read the store index", zap.Error(err))
			ctxtime.Sleep(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		break
	}
	for ctx.Err() == nil {
		h.mu.Lock()
		from := int64(h.current) + 1
		h.mu.Unlock()
		err := h.watch(ctx, from)
		if ctx.Err() != nil {
			return
		}
		h.m.restarts.Inc()
		pause := 200 * time.Millisecond
		if uerr := h.unavailable(); uerr != nil {
			// Refused for its identity: that changes when an operator
			// acts (auth off, --user, a grant), not in milliseconds.
			pause = time.Second
			h.log.Warn("v2 watch hub refused by the member", zap.Error(uerr))
		} else {
			h.log.Info("v2 watch hub resuming the upstream watch", zap.Int64("from-revision", from), zap.Error(err))
		}
		ctxtime.Sleep(ctx, pause)
	}
}

// own is ctx with the shim's identity, if it has one.
func (h *Hub) own(ctx context.Context) (context.Context, error) {
	if h.opts.Identity == nil {
		return ctx, nil
	}
	return h.opts.Identity.Context(ctx)
}

// refused records whether err is the member refusing the hub's identity.
func (h *Hub) refused(ctx, used context.Context, err error) {
	if h.opts.Identity != nil && err != nil {
		h.opts.Identity.Renew(ctx, used, err)
	}
	var authErr error
	if err != nil && etcderr.Denied(err) {
		authErr = ErrNeedsIdentity
		if h.opts.Identity != nil {
			authErr = fmt.Errorf("the member refuses the v2 watch to the shim's --user (it needs read permission on the v2 keyspace, <--v2-prefix>/): %w", err)
		}
	}
	h.mu.Lock()
	h.authErr = authErr
	h.mu.Unlock()
}

func (h *Hub) start(ctx context.Context) error {
	k, end := v2store.Keyspace(h.opts.Prefix)
	octx, err := h.own(ctx)
	if err != nil {
		h.refused(ctx, ctx, err)
		return err
	}
	r, err := etcdrpc.NewKVClient(h.up.ClientConn()).Range(octx, &pb.RangeRequest{Key: k, RangeEnd: end, CountOnly: true})
	h.refused(ctx, octx, err)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.current = uint64(r.Header.Revision)
	h.oldest = h.current + 1
	h.mu.Unlock()
	close(h.ready)
	return nil
}

func metaOf(hd *pb.ResponseHeader) v2store.Meta {
	return v2store.Meta{EtcdIndex: uint64(hd.Revision), RaftIndex: uint64(hd.Revision), RaftTerm: hd.RaftTerm, ClusterID: hd.ClusterId}
}

// watch follows the keyspace from revision from until the stream breaks.
func (h *Hub) watch(ctx context.Context, from int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Require a leader, as clientv3 does, so a partitioned member's watch
	// fails over instead of going silent.
	octx, err := h.own(ctx)
	if err != nil {
		h.refused(ctx, ctx, err)
		return err
	}
	octx = metadata.AppendToOutgoingContext(octx, "hasleader", "true")
	ws, err := etcdrpc.NewWatchClient(h.up.ClientConn()).Watch(octx)
	if err != nil {
		h.refused(ctx, octx, err)
		return fmt.Errorf("opening the watch: %w", err)
	}
	k, end := v2store.Keyspace(h.opts.Prefix)
	if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: k, RangeEnd: end, StartRevision: from, PrevKv: true, ProgressNotify: true}}}); err != nil {
		return fmt.Errorf("creating the watch: %w", err)
	}
	for {
		resp, err := ws.Recv()
		if err != nil {
			h.refused(ctx, octx, err)
			return fmt.Errorf("watch stream: %w", err)
		}
		if resp.CompactRevision != 0 {
			h.compacted(uint64(resp.CompactRevision))
			return fmt.Errorf("revision %d was compacted (oldest %d)", from, resp.CompactRevision)
		}
		if resp.Canceled {
			err := cancelError(resp.CancelReason)
			h.refused(ctx, octx, err)
			return fmt.Errorf("watch canceled by the member: %w", err)
		}
		if resp.Created {
			h.refused(ctx, octx, nil)
		}
		h.apply(resp)
	}
}

// expireSubtree removes the keys left below a directory whose TTL ran out.
func (h *Hub) expireSubtree(p string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	octx, err := h.own(ctx)
	if err != nil {
		h.log.Warn("removing an expired directory's contents failed", zap.String("dir", p), zap.Error(err))
		return
	}
	if _, err := etcdrpc.NewKVClient(h.up.ClientConn()).Txn(octx, v2store.ExpireSubtreeRequest(h.opts.Prefix, p)); err != nil {
		h.log.Warn("removing an expired directory's contents failed", zap.String("dir", p), zap.Error(err))
	}
}

// compacted drops what can no longer be answered: waiters behind the
// compaction get 401 and the history restarts there.
func (h *Hub) compacted(rev uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring = nil
	h.oldest = rev
	if h.current < rev-1 {
		h.current = rev - 1
	}
	for w := range h.waiters {
		if w.since < rev {
			h.closeLocked(w)
		}
	}
}

func (h *Hub) apply(resp *pb.WatchResponse) {
	for _, ev := range convertAll(h.opts.Prefix, resp.Events) {
		h.publish(ev)
		if ev.ev.Action == v2store.ActionExpire && ev.dir {
			go h.expireSubtree(ev.key)
		}
	}
	h.mu.Lock()
	if rev := uint64(etcdrpc.DeliveredRevision(resp)); rev > h.current {
		h.current = rev
	}
	h.mu.Unlock()
}

func (h *Hub) publish(ev *event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ring) == h.opts.History {
		h.oldest = h.ring[0].index + 1
		h.ring = h.ring[1:]
		h.m.evicted.Inc()
	}
	h.ring = append(h.ring, ev)
	if ev.index > h.current {
		h.current = ev.index
	}
	for w := range h.waiters {
		if ev.index < w.since || !ev.matches(w.key, w.recursive) {
			continue
		}
		select {
		case w.ch <- ev:
			h.m.events.Inc()
		default:
			h.closeLocked(w) // too slow: end it, as 3.4 does
			continue
		}
		if !w.stream {
			delete(h.waiters, w)
			h.m.waiters.Dec()
		}
	}
}

func (h *Hub) closeLocked(w *waiter) {
	if _, ok := h.waiters[w]; !ok {
		return
	}
	delete(h.waiters, w)
	h.m.waiters.Dec()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
}

// storeIndex reads the member's current revision: the hub's own view may
// trail a write the client has just seen acknowledged.
func (h *Hub) storeIndex(ctx context.Context) (v2store.Meta, error) {
	k, _ := v2store.Keyspace(h.opts.Prefix)
	octx, err := h.own(ctx)
	if err != nil {
		return v2store.Meta{}, err
	}
	r, err := etcdrpc.NewKVClient(h.up.ClientConn()).Range(octx, &pb.RangeRequest{Key: k, CountOnly: true, Serializable: true})
	if err != nil {
		return v2store.Meta{}, err
	}
	return metaOf(r.Header), nil
}

// register answers from history or queues a waiter. m is the store at
// registration (its index is the X-Etcd-Index header); without a waitIndex
// the watcher waits for an event after it, as in 3.4.
func (h *Hub) register(m v2store.Meta, key string, recursive, stream bool, waitIndex uint64) (*waiter, v2store.Meta, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.EtcdIndex < h.current {
		m.EtcdIndex = h.current
	}
	since := waitIndex
	if since == 0 {
		since = m.EtcdIndex + 1
	}
	w := &waiter{key: key, recursive: recursive, since: since, stream: stream, ch: make(chan *event, waiterBuffer)}
	if since <= h.current {
		if since < h.oldest {
			return nil, m, v2store.NewError(v2store.EcodeEventIndexCleared,
				fmt.Sprintf("the requested history has been cleared [%d/%d]", h.oldest, since), h.current)
		}
		for _, ev := range h.ring {
			if ev.index >= since && ev.matches(key, recursive) {
				w.ch <- ev
				w.since = ev.index + 1
				if !stream {
					return w, m, nil
				}
				if len(w.ch) == cap(w.ch) {
					break
				}
			}
		}
		if stream {
			w.since = h.current + 1
		}
	}
	h.waiters[w] = struct{}{}
	h.m.waiters.Inc()
	return w, m, nil
}

func (h *Hub) unregister(w *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closeLocked(w)
}

// ServeWatch answers a v2 wait=true request.
func (h *Hub) ServeWatch(w http.ResponseWriter, r *http.Request, key string, recursive, stream bool, waitIndex uint64,
	writeHeaders func(http.ResponseWriter, v2store.Meta)) {
	direct, _ := r.Context().Value(directKey{}).(Direct)
	if direct != nil && h.unavailable() != nil {
		// Auth keeps the hub from following the keyspace (no --user):
		// the client's own watch, with its own rights.
		h.serveDirect(w, r, direct, key, recursive, stream, waitIndex, writeHeaders)
		return
	}
	wait := time.NewTimer(startWait)
	defer wait.Stop()
	select {
	case <-h.ready:
	case <-r.Context().Done():
		return
	case <-wait.C:
		if direct != nil {
			h.serveDirect(w, r, direct, key, recursive, stream, waitIndex, writeHeaders)
			return
		}
		// Not following the keyspace yet: say why instead of hanging.
		cause := "the v2 watch hub has not read the store index yet"
		if err := h.unavailable(); err != nil {
			cause = err.Error()
		}
		v2store.NewError(v2store.EcodeRaftInternal, cause, 0).WriteTo(w)
		return
	}
	if err := h.unavailable(); err != nil {
		v2store.NewError(v2store.EcodeRaftInternal, err.Error(), 0).WriteTo(w)
		return
	}
	m, err := h.storeIndex(r.Context())
	if err != nil && direct != nil && etcderr.Denied(err) {
		// The hub's watch began before auth was switched on and still
		// runs, but the shim may not read the store index now.
		h.serveDirect(w, r, direct, key, recursive, stream, waitIndex, writeHeaders)
		return
	}
	if err != nil {
		cause := "reading the store index: " + err.Error()
		if etcderr.Denied(err) && h.opts.Identity == nil {
			cause = ErrNeedsIdentity.Error()
		}
		v2store.NewError(v2store.EcodeRaftInternal, cause, 0).WriteTo(w)
		return
	}
	check, _ := r.Context().Value(checkKey{}).(Check)
	wt, m, err := h.register(m, key, recursive, stream, waitIndex)
	if err != nil {
		var ve *v2store.Error
		if errors.As(err, &ve) {
			w.Header().Set("X-Etcd-Cluster-Id", fmt.Sprintf("%x", m.ClusterID))
			ve.WriteTo(w)
		}
		return
	}
	if stream {
		h.m.streams.Inc()
		defer h.m.streams.Dec()
	}
	defer h.unregister(wt)
	writeHeaders(w, m)
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush() // headers at once, as 3.4
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case ev, ok := <-wt.ch:
			if !ok {
				return
			}
			// The event was read under the shim's identity: the member
			// must confirm the client may read it, now (its rights may
			// have changed since it began to wait). If not, the watch
			// ends without it, and the client's next request is refused.
			if check != nil {
				if err := check(r.Context(), ev.index); err != nil {
					h.log.Debug("v2 watch closed: the member no longer lets the client read what it watches", zap.String("key", key), zap.Error(err))
					return
				}
			}
			if err := enc.Encode(ev.ev); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			if !stream {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

// unavailable is why the hub cannot follow the keyspace now, or nil.
func (h *Hub) unavailable() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.authErr
}

// cancelError is the error a watch cancel names. etcd sends the reason of
// an auth refusal as the text of its rpctypes.ErrGRPC* error, which is all
// a cancel carries: it is turned back into that error, exactly.
func cancelError(reason string) error {
	for _, e := range []error{rpctypes.ErrGRPCPermissionDenied, rpctypes.ErrGRPCInvalidAuthToken,
		rpctypes.ErrGRPCAuthOldRevision, rpctypes.ErrGRPCUserEmpty} {
		if reason == e.Error() {
			return e
		}
	}
	return errors.New(reason)
}

// Watchers counts the waiting v2 watchers (for /v2/stats/store).
func (h *Hub) Watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.waiters)
}
