package v2follow_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2cache"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2watch"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// TestShared runs, on one embedded etcd, the tests of the follower with
// both its consumers: the watch hub and the read cache.
func TestShared(t *testing.T) {
	_, cc := etcdtest.Start(t)
	t.Run("one upstream watch for long polls and cached reads", func(t *testing.T) { testOneWatch(t, cc) })
	t.Run("a compaction while the watch is down", func(t *testing.T) { testCompactionGap(t, cc) })
}

// member wraps the embedded member's connection: it counts the watch
// streams opened through it and the watches created on them, and can break
// them and hold new ones back.
type member struct {
	cc *grpc.ClientConn

	mu               sync.Mutex
	streams, creates int
	cancels          []context.CancelFunc
	gate             chan struct{} // non-nil: new watch streams wait for it
}

func (m *member) ClientConn() grpc.ClientConnInterface { return (*memberConn)(m) }

func (m *member) counts() (streams, creates int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.streams, m.creates
}

// breakWatches ends every watch stream and holds new ones back until
// release.
func (m *member) breakWatches() (release func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gate := make(chan struct{})
	m.gate = gate
	for _, c := range m.cancels {
		c()
	}
	m.cancels = nil
	return func() {
		m.mu.Lock()
		m.gate = nil
		m.mu.Unlock()
		close(gate)
	}
}

type memberConn member

func (c *memberConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.cc.Invoke(ctx, method, args, reply, opts...)
}

func (c *memberConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if method != "/etcdserverpb.Watch/Watch" {
		return c.cc.NewStream(ctx, desc, method, opts...)
	}
	c.mu.Lock()
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	s, err := c.cc.NewStream(ctx, desc, method, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	c.mu.Lock()
	c.streams++
	c.cancels = append(c.cancels, cancel)
	c.mu.Unlock()
	return &countingStream{ClientStream: s, c: c}, nil
}

type countingStream struct {
	grpc.ClientStream
	c *memberConn
}

func (s *countingStream) SendMsg(m any) error {
	if r, ok := m.(*pb.WatchRequest); ok && r.GetCreateRequest() != nil {
		s.c.mu.Lock()
		s.c.creates++
		s.c.mu.Unlock()
	}
	return s.ClientStream.SendMsg(m)
}

// shim is a follower with a hub and a read cache on it, all reaching the
// member through m, and a store reading through the cache.
type shim struct {
	m      *member
	hub    *v2watch.Hub
	cached *v2store.V3Store
	direct *v2store.V3Store
	reg    *prometheus.Registry
	stop   func()
}

func newShim(t *testing.T, cc *grpc.ClientConn, prefix string) *shim {
	t.Helper()
	m := &member{cc: cc}
	reg := prometheus.NewRegistry()
	f := v2follow.New(v2follow.Options{Prefix: prefix, Registerer: reg}, m)
	hub := v2watch.New(v2watch.Options{Prefix: prefix, Registerer: reg}, f, m)
	cache := v2cache.New(v2cache.Options{Prefix: prefix, MaxBytes: 1 << 30, Registerer: reg}, m.ClientConn(), f)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = f.Run(ctx) }()
	go func() { defer wg.Done(); _ = cache.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return &shim{m: m, hub: hub, cached: v2store.NewV3(cc, prefix).WithReadCache(cache), direct: v2store.NewV3(cc, prefix), reg: reg, stop: stop}
}

func (s *shim) metric(t *testing.T, name, label string) float64 {
	return etcdtest.Metric(t, s.reg, name, label)
}

// until waits for cond, failing the test after hangGuard.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitfor.True(t, hangGuard, what, cond)
}

// serving makes a first cached read (the cache starts with it) and waits
// until the cache answers.
func (s *shim) serving(t *testing.T) {
	t.Helper()
	_, _, _ = s.cached.Get(context.Background(), "/", v2store.GetOptions{})
	until(t, "the cache serves", func() bool { return s.metric(t, "etcdshim_v2_read_cache_serving", "") == 1 })
}

func (s *shim) set(t *testing.T, key, value string) uint64 {
	t.Helper()
	ev, _, err := s.direct.Put(context.Background(), key, v2store.SetOptions{Value: value})
	if err != nil {
		t.Fatal(err)
	}
	return ev.Node.ModifiedIndex
}

func (s *shim) watch(t *testing.T, key string, waitIndex uint64) (v2store.Watcher, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	w, _, err := s.hub.Watch(ctx, key, v2store.WatchOptions{WaitIndex: waitIndex})
	if err == nil {
		t.Cleanup(w.Stop)
	}
	return w, err
}

func next(t *testing.T, w v2store.Watcher) *v2store.Change {
	t.Helper()
	c := waitfor.Recv(t, w.Changes(), hangGuard, "an event")
	if c == nil {
		t.Fatal("the watch ended")
	}
	return c
}

// memberWatchers is the embedded member's count of v3 watchers (it
// registers its metrics in the default registry).
func memberWatchers(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "etcd_debugging_mvcc_watcher_total" {
			return mf.Metric[0].Gauge.GetValue()
		}
	}
	t.Fatal("the member exports no etcd_debugging_mvcc_watcher_total")
	return 0
}

// testOneWatch: long polls waiting and cached reads served cost the member
// one watch, on one stream, from one create request.
func testOneWatch(t *testing.T, cc *grpc.ClientConn) {
	before := memberWatchers(t)
	s := newShim(t, cc, "/one-watch")
	s.set(t, "/poll/0", "v")
	s.serving(t)
	const polls, reads = 100, 100
	var ws []v2store.Watcher
	for i := 0; i < polls; i++ {
		w, err := s.watch(t, fmt.Sprintf("/poll/%d", i%10), 0)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if n := s.hub.Watchers(); n != polls {
		t.Fatalf("%d long polls waiting, want %d", n, polls)
	}
	hits := s.metric(t, "etcdshim_v2_read_cache_reads_total", "hit")
	for i := 0; i < reads; i++ {
		if _, _, err := s.cached.Get(context.Background(), "/poll", v2store.GetOptions{Recursive: true}); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.metric(t, "etcdshim_v2_read_cache_reads_total", "hit") - hits; got != reads {
		t.Fatalf("%v of %d reads came from the cache", got, reads)
	}
	until(t, "the member counts the follower's watch", func() bool { return memberWatchers(t) == before+1 })
	if streams, creates := s.m.counts(); streams != 1 || creates != 1 {
		t.Fatalf("%d watch streams, %d watches created for %d long polls and %d cached reads, want 1 and 1", streams, creates, polls, reads)
	}
	for i := 0; i < 10; i++ {
		s.set(t, fmt.Sprintf("/poll/%d", i), "wake")
	}
	for i, w := range ws {
		if c := next(t, w); c.Path != fmt.Sprintf("/poll/%d", i%10) {
			t.Fatalf("long poll %d woken by %s", i, c.Path)
		}
	}
	// The member agrees: stopping the follower removes its one watcher.
	s.stop()
	until(t, "the member drops the follower's watch", func() bool { return memberWatchers(t) == before })
}

// testCompactionGap: the member compacts the revisions the follower needs
// while its watch is down. The watch history records the gap (a waitIndex
// before it answers 401, one after it is served) and the cache reloads and
// serves what was written meanwhile.
func testCompactionGap(t *testing.T, cc *grpc.ClientConn) {
	s := newShim(t, cc, "/gap")
	ctx := context.Background()
	s.serving(t)
	first := s.set(t, "/k", "before")
	w, err := s.watch(t, "/k", first)
	if err != nil {
		t.Fatal(err)
	}
	if c := next(t, w); c.Index != first {
		t.Fatalf("history: event at %d, want %d", c.Index, first)
	}
	restarts := s.metric(t, "etcdshim_v2_read_cache_restarts_total", "")

	release := s.m.breakWatches()
	until(t, "the cache stops serving", func() bool { return s.metric(t, "etcdshim_v2_read_cache_serving", "") == 0 })
	lost := s.set(t, "/k", "lost")
	last := s.set(t, "/k", "after")
	if _, err := pb.NewKVClient(cc).Compact(ctx, &pb.CompactionRequest{Revision: int64(last), Physical: true}); err != nil {
		t.Fatal(err)
	}
	release()

	// The cache reloads after the compaction (until then a read may find
	// it serving its old copy, whose barrier then fails: the member
	// answers such a read).
	until(t, "the cache reloads", func() bool {
		hits := s.metric(t, "etcdshim_v2_read_cache_reads_total", "hit")
		ev, _, err := s.cached.Get(ctx, "/k", v2store.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s.metric(t, "etcdshim_v2_read_cache_reads_total", "hit") == hits {
			return false // the member answered
		}
		if *ev.Node.Value != "after" || ev.Node.ModifiedIndex != last {
			t.Fatalf("cached read after the gap: %+v", ev.Node)
		}
		return true
	})
	if got := s.metric(t, "etcdshim_v2_read_cache_restarts_total", "") - restarts; got != 2 {
		t.Errorf("cache restarts grew by %v, want 2: the break and the compaction", got)
	}
	// The event at the compaction's revision is still delivered; the one
	// before it is gone.
	w, err = s.watch(t, "/k", last)
	if err != nil {
		t.Fatal(err)
	}
	if c := next(t, w); c.Index != last || *c.Event.Node.Value != "after" {
		t.Fatalf("watch from the compaction: %+v", c.Event.Node)
	}
	for _, idx := range []uint64{first, lost} {
		_, err = s.watch(t, "/k", idx)
		var ve *v2store.Error
		if !errors.As(err, &ve) || ve.Code != v2store.EcodeEventIndexCleared {
			t.Fatalf("watch from %d, before the gap: %v, want 401", idx, err)
		}
	}
}
