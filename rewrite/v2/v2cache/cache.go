package v2cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-semver/semver"
	"github.com/etcdshim/etcdshim/internal/ctxtime"
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

// Cache is the v2 read cache. Run feeds it; Acquire reads from it.
type Cache struct {
	opts Options
	up   grpc.ClientConnInterface
	kv   pb.KVClient
	log  *zap.Logger
	m    *metrics

	wanted   chan struct{} // closed by the first eligible read: Run starts then
	wantOnce sync.Once
	runCtx   atomic.Pointer[context.Context]
	snap     atomic.Pointer[snapshot] // nil while not serving
	progress chan struct{}            // asks the watch loop for a progress notification

	mu       sync.Mutex
	advanced chan struct{} // closed and replaced whenever snap changes
	pending  *barrier      // the barrier reads arriving now will share
	running  bool          // a goroutine is passing barriers
}

var _ v2store.ReadCache = (*Cache)(nil)

// New returns a cache on up; Run starts it.
func New(opts Options, up grpc.ClientConnInterface) *Cache {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.BarrierTimeout <= 0 {
		opts.BarrierTimeout = time.Second
	}
	return &Cache{opts: opts, up: up, kv: etcdrpc.NewKVClient(up), log: opts.Logger, m: newMetrics(opts.Registerer),
		wanted: make(chan struct{}), progress: make(chan struct{}, 1), advanced: make(chan struct{})}
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

// Run feeds the cache until ctx ends, from the first eligible read on.
func (c *Cache) Run(ctx context.Context) {
	c.runCtx.Store(&ctx)
	select {
	case <-c.wanted:
	case <-ctx.Done():
		return
	}
	var st *state
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		if st == nil {
			var err error
			if st, err = c.load(ctx); err != nil {
				if errors.Is(err, errTooBig) {
					c.log.Warn("v2 read cache off: v2 GETs go to the member", zap.Error(err))
					return
				}
				c.log.Info("v2 read cache cannot load the keyspace; reads go to the member", zap.Error(err))
				ctxtime.Sleep(ctx, backoff)
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
		}
		served, err := c.follow(ctx, st)
		c.publish(nil)
		if ctx.Err() != nil {
			return
		}
		c.m.restarts.Inc()
		if served {
			backoff = 200 * time.Millisecond
		}
		switch {
		case errors.Is(err, errTooBig):
			c.log.Warn("v2 read cache off: v2 GETs go to the member", zap.Error(err))
			return
		case errors.Is(err, errCompacted):
			st = nil
		case errors.Is(err, errUntrusted):
			// Members are upgraded in minutes; look again now and then.
			backoff = 30 * time.Second
		}
		c.log.Info("v2 read cache resuming its watch; reads go to the member meanwhile", zap.Int64("from-revision", st.revOrZero()), zap.Error(err))
		ctxtime.Sleep(ctx, backoff)
		backoff = min(2*backoff, 30*time.Second)
	}
}

// supported reports whether a member's requested progress notifications
// can be trusted to follow every event before them.
func supported(version string) bool {
	v, err := semver.NewVersion(version)
	return err == nil && !v.LessThan(minVersion)
}
