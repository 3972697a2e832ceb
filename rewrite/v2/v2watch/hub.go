package v2watch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Upstream is the proxy's connection picker, for the watches that run as
// their client (direct.go).
type Upstream interface {
	ClientConn() grpc.ClientConnInterface
}

// Feed is the follower of the v2 keyspace (v2follow.Follower) the hub's
// history comes from.
type Feed interface {
	// Subscribe makes s receive the follower's batches from now on.
	Subscribe(s v2follow.Subscriber) (cancel func())
	// Unavailable is why the follower cannot follow the keyspace now, or
	// nil.
	Unavailable() error
	// StoreIndex reads the member's current revision as the follower.
	StoreIndex(ctx context.Context) (v2store.Meta, error)
}

// Options configure the hub.
type Options struct {
	Prefix     string
	History    int // events kept for waitIndex (3.4: 1000)
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// startWait bounds how long a watch waits for the follower's first watch
// before it is served by a watch of the client's own instead.
const startWait = 3 * time.Second

// waiterBuffer is how many undelivered events a streaming watcher may have
// before it is closed, as 3.4 closes a watcher whose 100-event channel fills.
const waiterBuffer = 100

// Hub hands out v2 watches served from the follower's one upstream watch.
type Hub struct {
	opts Options
	feed Feed
	up   Upstream
	log  *zap.Logger
	m    *metrics

	mu      sync.Mutex
	ring    []*v2store.Change // oldest first, at most opts.History
	oldest  uint64            // smallest index a waitIndex may ask for
	current uint64            // the store index: every event up to it has been seen
	waiters map[*waiter]struct{}
	started bool
	ready   chan struct{} // closed at the follower's first Resumed
}

type metrics struct {
	waiters, streams prometheus.Gauge
	events, evicted  prometheus.Counter
}

// New returns a hub fed by feed; it subscribes at once.
func New(opts Options, feed Feed, up Upstream) *Hub {
	if opts.History <= 0 {
		opts.History = 1000
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	m := &metrics{
		waiters: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcdshim_v2_watch_waiters", Help: "v2 watch requests waiting (long polls and streams)."}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcdshim_v2_watch_streams", Help: "v2 streaming watches (stream=true) open."}),
		events:  prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_v2_watch_events_fanned_out_total", Help: "v2 events delivered to waiters."}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_v2_watch_history_evictions_total", Help: "v2 events dropped from the waitIndex history."}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.waiters, m.streams, m.events, m.evicted)
	}
	h := &Hub{opts: opts, feed: feed, up: up, log: opts.Logger, m: m, waiters: map[*waiter]struct{}{}, ready: make(chan struct{})}
	feed.Subscribe((*subscriber)(h))
	return h
}

// subscriber is the hub as the follower's subscriber.
type subscriber Hub

// Resumed starts the history at the follower's first watch; later ones
// continue it.
func (s *subscriber) Resumed(rev int64, _ uint64) {
	h := (*Hub)(s)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started {
		return
	}
	h.started = true
	if uint64(rev) > h.current {
		h.current = uint64(rev)
	}
	if h.oldest < h.current+1 {
		h.oldest = h.current + 1
	}
	close(h.ready)
}

// Apply records a batch's v2 events and fans them out.
func (s *subscriber) Apply(b *v2follow.Batch) {
	h := (*Hub)(s)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range b.Changes {
		h.publishLocked(c)
	}
	if rev := uint64(b.Revision); rev > h.current {
		h.current = rev
	}
}

// Broken records a gap in the history: waiters behind a compaction get
// 401 and the history restarts there.
func (s *subscriber) Broken(compacted int64, _ error) {
	if compacted <= 0 {
		return // the follower resumes after the last event: no gap
	}
	h := (*Hub)(s)
	rev := uint64(compacted)
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

func (h *Hub) publishLocked(c *v2store.Change) {
	if len(h.ring) == h.opts.History {
		h.oldest = h.ring[0].Index + 1
		h.ring = h.ring[1:]
		h.m.evicted.Inc()
	}
	h.ring = append(h.ring, c)
	if c.Index > h.current {
		h.current = c.Index
	}
	for w := range h.waiters {
		if c.Index < w.since || !c.Matches(w.key, w.recursive) {
			continue
		}
		select {
		case w.ch <- c:
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

// waiter is a watch registered with the hub.
type waiter struct {
	h         *Hub
	key       string
	recursive bool
	since     uint64
	stream    bool
	ch        chan *v2store.Change
	closed    bool
	stopOnce  sync.Once
}

func (w *waiter) Changes() <-chan *v2store.Change { return w.ch }

func (w *waiter) Stop() {
	w.stopOnce.Do(func() {
		w.h.mu.Lock()
		w.h.closeLocked(w)
		w.h.mu.Unlock()
		if w.stream {
			w.h.m.streams.Dec()
		}
	})
}

// errNotReady: the follower has not started following the keyspace.
var errNotReady = errors.New("the v2 follower has not read the store index yet")

// Watch registers a v2 watch of key. It answers from the history or waits
// for the follower's events; while the follower cannot follow the keyspace
// (auth on, no --user), or is not following it yet after a few seconds, the
// watch runs upstream as its client instead, with the credentials ctx
// carries (direct.go). The Meta is the store at registration (the answer's
// X-Etcd-Index). Errors are *v2store.Error for v2 conditions (401 history
// cleared), the member's refusal of the client, or why the hub cannot
// serve.
func (h *Hub) Watch(ctx context.Context, key string, o v2store.WatchOptions) (v2store.Watcher, v2store.Meta, error) {
	if h.feed.Unavailable() != nil {
		// Auth keeps the follower from following the keyspace (no
		// --user): the client's own watch, with its own rights.
		return h.direct(ctx, key, o)
	}
	wait := time.NewTimer(startWait)
	defer wait.Stop()
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, v2store.Meta{}, ctx.Err()
	case <-wait.C:
		// Not following the keyspace yet: the client's own watch, or
		// (without an upstream for it) why not, instead of hanging.
		return h.direct(ctx, key, o)
	}
	if h.feed.Unavailable() != nil {
		return h.direct(ctx, key, o)
	}
	m, err := h.feed.StoreIndex(ctx)
	if err != nil && etcderr.Denied(err) {
		// The follower's watch began before auth was switched on and
		// still runs, but the shim may not read the store index now.
		return h.direct(ctx, key, o)
	}
	if err != nil {
		return nil, v2store.Meta{}, fmt.Errorf("reading the store index: %w", err)
	}
	return h.register(m, key, o)
}

// register answers from history or queues a waiter. m is the store at
// registration (its index is the X-Etcd-Index header); without a waitIndex
// the watcher waits for an event after it, as in 3.4.
func (h *Hub) register(m v2store.Meta, key string, o v2store.WatchOptions) (v2store.Watcher, v2store.Meta, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.EtcdIndex < h.current {
		m.EtcdIndex = h.current
	}
	since := o.WaitIndex
	if since == 0 {
		since = m.EtcdIndex + 1
	}
	w := &waiter{h: h, key: key, recursive: o.Recursive, since: since, stream: o.Stream, ch: make(chan *v2store.Change, waiterBuffer)}
	if since <= h.current {
		if since < h.oldest {
			return nil, m, v2store.NewError(v2store.EcodeEventIndexCleared,
				fmt.Sprintf("the requested history has been cleared [%d/%d]", h.oldest, since), h.current)
		}
		for _, c := range h.ring {
			if c.Index >= since && c.Matches(key, o.Recursive) {
				w.ch <- c
				w.since = c.Index + 1
				if !o.Stream {
					// Answered from history: nothing to wait for.
					return w, m, nil
				}
				if len(w.ch) == cap(w.ch) {
					break
				}
			}
		}
		if o.Stream {
			w.since = h.current + 1
		}
	}
	h.waiters[w] = struct{}{}
	h.m.waiters.Inc()
	if o.Stream {
		h.m.streams.Inc()
	}
	return w, m, nil
}

// Watchers counts the waiting v2 watchers (for /v2/stats/store).
func (h *Hub) Watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.waiters)
}
