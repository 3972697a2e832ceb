package v2cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-semver/semver"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Options configure a Cache.
type Options struct {
	// Prefix is --v2-prefix: the cache holds the v3 range under Prefix+"/".
	Prefix string
	// MaxBytes bounds the keys and values held; a keyspace that outgrows
	// it turns the cache off (reads go to the member) until the shim restarts.
	MaxBytes int64
	// AnonymousToken is the token the shim sends for clients without
	// credentials when it presents a client certificate to the members
	// (v2auth.AnonymousToken), or "" when it sends none.
	AnonymousToken string
	// BarrierTimeout bounds how long a read waits for the cache to catch
	// up before it goes to the member instead (default 1s).
	BarrierTimeout time.Duration
	Logger         *zap.Logger
	Registerer     prometheus.Registerer
}

// minVersion is the oldest member whose requested progress notifications
// are ordered with the watch's events (see the package doc).
var minVersion = semver.Version{Major: 3, Minor: 5, Patch: 13}

// progressRetry is how often a waiting barrier asks again for a progress
// notification: etcd drops the request while the watcher is catching up.
const progressRetry = 50 * time.Millisecond

// trustRetry is how often the version of a member the cache does not trust
// is read again while the follower's watch stays on it: members are
// upgraded in minutes.
const trustRetry = 30 * time.Second

// Cache is the v2 read cache. Run keeps it current from the follower's
// batches; Acquire reads from it.
type Cache struct {
	opts Options
	up   grpc.ClientConnInterface
	kv   pb.KVClient
	feed Feed
	log  *zap.Logger
	m    *metrics

	wanted   chan struct{} // closed by the first eligible read: Run starts then
	wantOnce sync.Once
	runCtx   atomic.Pointer[context.Context]
	snap     atomic.Pointer[snapshot] // nil while not serving

	mu       sync.Mutex
	advanced chan struct{} // closed and replaced whenever snap changes
	pending  *barrier      // the barrier reads arriving now will share
	running  bool          // a goroutine is passing barriers
}

var _ v2store.ReadCache = (*Cache)(nil)

// New returns a cache that reads the member through up (its load, its
// barriers, the member's version) and follows the keyspace through feed;
// Run starts it.
func New(opts Options, up grpc.ClientConnInterface, feed Feed) *Cache {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.BarrierTimeout <= 0 {
		opts.BarrierTimeout = time.Second
	}
	return &Cache{opts: opts, up: up, kv: etcdrpc.NewKVClient(up), feed: feed, log: opts.Logger, m: newMetrics(opts.Registerer),
		wanted: make(chan struct{}), advanced: make(chan struct{})}
}

// anonymous is ctx as the shim sends an anonymous client's request.
func (c *Cache) anonymous(ctx context.Context) context.Context {
	if c.opts.AnonymousToken == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, c.opts.AnonymousToken)
}

// eligible reports whether ctx is an anonymous client's read: the only
// reads whose answer does not depend on who asks (the barrier checks that
// anonymous reads are allowed at all).
func (c *Cache) eligible(ctx context.Context) bool {
	md, _ := metadata.FromOutgoingContext(ctx)
	for _, t := range md.Get(rpctypes.TokenFieldNameGRPC) {
		if t != c.opts.AnonymousToken || t == "" {
			return false
		}
	}
	return true
}

// Acquire implements v2store.ReadCache.
func (c *Cache) Acquire(ctx context.Context) (v2store.Ranger, bool) {
	if !c.eligible(ctx) {
		c.m.credentials.Inc()
		return nil, false
	}
	c.wantOnce.Do(func() { close(c.wanted) })
	if c.snap.Load() == nil {
		c.m.notReady.Inc()
		return nil, false
	}
	b := c.join()
	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, false
	}
	s := c.snap.Load()
	if b.err != nil || s == nil || s.rev < b.rev {
		c.m.barrierFailed.Inc()
		return nil, false
	}
	c.m.hits.Inc()
	v := &view{s: s, header: b.header}
	v.header.Revision = s.rev
	return v, true
}

// publish makes s what reads see, and wakes barriers waiting for it.
func (c *Cache) publish(s *snapshot) {
	c.snap.Store(s)
	c.mu.Lock()
	close(c.advanced)
	c.advanced = make(chan struct{})
	c.mu.Unlock()
	if s == nil {
		c.m.serving.Set(0)
		return
	}
	c.m.serving.Set(1)
	c.m.keys.Set(float64(s.kvs.Len()))
	c.m.bytes.Set(float64(s.bytes))
}

// errTooBig turns the cache off for good.
var errTooBig = errors.New("the v2 keyspace is larger than --v2-read-cache-max-bytes")

// Run keeps the cache current from the first eligible read on, until ctx
// ends; it returns nil then. A keyspace larger than MaxBytes turns the
// cache off for good (logged; reads go to the member): Run then only waits
// for ctx.
func (c *Cache) Run(ctx context.Context) error {
	c.runCtx.Store(&ctx)
	select {
	case <-c.wanted:
	case <-ctx.Done():
		return nil
	}
	q := newQueue(max(c.opts.MaxBytes, 1<<20))
	unsubscribe := c.feed.Subscribe(q)
	defer unsubscribe()
	defer c.publish(nil)
	f := &follow{c: c, backoff: loadBackoff}
	for {
		ns, overflow, dropped := q.take()
		err := f.handle(ns, overflow, dropped)
		if err == nil {
			err = f.prepare(ctx)
		}
		if err != nil {
			// Off for good; the shim goes on serving, from the member.
			c.log.Warn("v2 read cache off: v2 GETs go to the member", zap.Error(err))
			unsubscribe()
			c.publish(nil)
			<-ctx.Done()
			return nil
		}
		f.publish()
		var retry <-chan time.Time
		var timer *time.Timer
		if at := f.wakeAt(); !at.IsZero() {
			timer = time.NewTimer(time.Until(at))
			retry = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.signal:
		case <-retry:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// supported reports whether a member's requested progress notifications
// can be trusted to follow every event before them.
func supported(version string) bool {
	v, err := semver.NewVersion(version)
	return err == nil && !v.LessThan(minVersion)
}
