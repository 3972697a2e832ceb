package v2watch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2watch"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
)

// TestHub runs every hub test on one embedded etcd; each subtest has a hub
// (one upstream watch) over a v2 prefix of its own.
func TestHub(t *testing.T) {
	_, cc := etcdtest.Start(t)
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *grpc.ClientConn)
	}{
		{"next matching event", testNextEvent},
		{"waitIndex in history", testHistory},
		{"waitIndex before history", testHistoryCleared},
		{"recursive", testRecursive},
		{"ancestor delete", testAncestorDelete},
		{"hidden keys", testHidden},
		{"refresh", testRefresh},
		{"expire", testExpire},
		{"stream", testStream},
		{"cancel", testCancel},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, cc) })
	}
}

// env is a follower, a hub on it and a v2 store on the same prefix.
type env struct {
	hub   *v2watch.Hub
	store *v2store.V3Store
	reg   *prometheus.Registry
}

func newEnv(t *testing.T, cc *grpc.ClientConn, prefix string, history int) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	f := v2follow.New(v2follow.Options{Prefix: prefix, Registerer: reg}, etcdtest.Upstream{Conn: cc})
	h := v2watch.New(v2watch.Options{Prefix: prefix, History: history, Registerer: reg}, f, etcdtest.Upstream{Conn: cc})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); waitfor.Recv(t, done, hangGuard, "the follower to stop") })
	e := &env{hub: h, store: v2store.NewV3(cc, prefix), reg: reg}
	e.ready(t)
	return e
}

// ready returns once the hub follows the keyspace (its history starts at
// the follower's first watch): a watch is registered only after that.
func (e *env) ready(t *testing.T) {
	t.Helper()
	e.watch(t, "/_ready", false, false, 0).stop()
}

// set writes a file through the v2 store and returns its index.
func (e *env) set(t *testing.T, key, value string, o ...func(*v2store.SetOptions)) uint64 {
	t.Helper()
	so := v2store.SetOptions{Value: value}
	for _, f := range o {
		f(&so)
	}
	ev, m, err := e.store.Put(context.Background(), key, so)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	if ev.Node != nil && ev.Node.ModifiedIndex != 0 {
		return ev.Node.ModifiedIndex
	}
	return m.EtcdIndex
}

func withTTL(s int) func(*v2store.SetOptions) {
	return func(o *v2store.SetOptions) { d := time.Duration(s) * time.Second; o.TTL = &d }
}

func asDir(o *v2store.SetOptions) { o.Dir = true }

func (e *env) del(t *testing.T, key string, o v2store.DeleteOptions) uint64 {
	t.Helper()
	_, m, err := e.store.Delete(context.Background(), key, o)
	if err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
	return m.EtcdIndex
}

// sync waits until the hub has seen revision idx (a watch from it answers).
func (e *env) sync(t *testing.T, key string, idx uint64) {
	t.Helper()
	w := e.watch(t, key, true, false, idx)
	w.event(t)
}

// watchCall is one registered watch.
type watchCall struct {
	wt    v2store.Watcher
	meta  v2store.Meta
	err   error
	index uint64 // the store at registration: X-Etcd-Index
}

// hangGuard bounds every wait so that a broken hub fails instead of hanging;
// it is not a performance threshold.
const hangGuard = 20 * time.Second

// watch registers a watch; a watch the hub refuses has err set.
func (e *env) watch(t *testing.T, key string, recursive, stream bool, waitIndex uint64) *watchCall {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	wt, m, err := e.hub.Watch(ctx, key, v2store.WatchOptions{Recursive: recursive, Stream: stream, WaitIndex: waitIndex})
	c := &watchCall{wt: wt, meta: m, err: err, index: m.EtcdIndex}
	if err == nil {
		t.Cleanup(wt.Stop)
	}
	return c
}

func (c *watchCall) stop() {
	if c.wt != nil {
		c.wt.Stop()
	}
}

func (c *watchCall) change(t *testing.T) *v2store.Change {
	t.Helper()
	if c.err != nil {
		t.Fatalf("the watch was refused: %v", c.err)
	}
	ch := waitfor.Recv(t, c.wt.Changes(), hangGuard, "an event")
	if ch == nil {
		t.Fatal("the watch ended without an event")
	}
	return ch
}

// event is the next event, as the client receives it (JSON).
func (c *watchCall) event(t *testing.T) *v2store.Event {
	t.Helper()
	b, err := json.Marshal(c.change(t).Event)
	if err != nil {
		t.Fatal(err)
	}
	var ev v2store.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return &ev
}

// wantEvent checks an event's action, key and modifiedIndex.
func wantEvent(t *testing.T, ev *v2store.Event, action, key string, index uint64) {
	t.Helper()
	if ev.Action != action || ev.Node == nil || ev.Node.Key != key || ev.Node.ModifiedIndex != index {
		b, _ := json.Marshal(ev)
		t.Errorf("event %s, want action %s on %s at index %d", b, action, key, index)
	}
}

func testNextEvent(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, "/hub-next", 0)
	before := e.set(t, "/a/b", "old")
	w := e.watch(t, "/a/b", false, false, 0)
	if w.err != nil || w.index < before {
		t.Fatalf("watch answered %v with X-Etcd-Index %d (store at %d)", w.err, w.index, before)
	}
	e.set(t, "/a/x", "sibling")
	e.set(t, "/a/b-c", "similar name")
	i := e.set(t, "/a/b", "new")
	ev := w.event(t)
	wantEvent(t, ev, v2store.ActionSet, "/a/b", i)
	if ev.Node.Value == nil || *ev.Node.Value != "new" || ev.PrevNode == nil || *ev.PrevNode.Value != "old" {
		t.Errorf("event node %+v prevNode %+v", ev.Node, ev.PrevNode)
	}
	// The header is the store index at registration, not the event's.
	if w.index >= i {
		t.Errorf("X-Etcd-Index %d, event at %d", w.index, i)
	}
	if n := e.hub.Watchers(); n != 0 {
		t.Errorf("%d watchers left after the long poll ended", n)
	}

	// Actions are told apart through the action key.
	for _, c := range []struct {
		action string
		write  func() uint64
	}{
		{v2store.ActionCreate, func() uint64 {
			return e.set(t, "/a/created", "v", func(o *v2store.SetOptions) { o.PrevExist = new(bool) })
		}},
		{v2store.ActionUpdate, func() uint64 {
			return e.set(t, "/a/created", "v2", func(o *v2store.SetOptions) { b := true; o.PrevExist = &b })
		}},
		{v2store.ActionCompareAndSwap, func() uint64 {
			return e.set(t, "/a/created", "v3", func(o *v2store.SetOptions) { o.PrevValue = "v2" })
		}},
		{v2store.ActionCompareAndDelete, func() uint64 {
			return e.del(t, "/a/created", v2store.DeleteOptions{PrevValue: "v3"})
		}},
	} {
		w := e.watch(t, "/a/created", false, false, 0)
		i := c.write()
		wantEvent(t, w.event(t), c.action, "/a/created", i)
	}
}

func testHistory(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, "/hub-history", 0)
	i1 := e.set(t, "/h", "v1")
	e.set(t, "/other", "x")
	i2 := e.set(t, "/h", "v2")
	e.sync(t, "/", i2)
	for _, c := range []struct {
		name      string
		waitIndex uint64
		want      uint64
		value     string
	}{
		{"exact index", i1, i1, "v1"},
		{"first matching at or after", i1 + 1, i2, "v2"},
		{"latest", i2, i2, "v2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := e.watch(t, "/h", false, false, c.waitIndex)
			ev := w.event(t) // no write happens: it must come from history
			wantEvent(t, ev, v2store.ActionSet, "/h", c.want)
			if *ev.Node.Value != c.value {
				t.Errorf("value %q, want %q", *ev.Node.Value, c.value)
			}
			if n := e.hub.Watchers(); n != 0 {
				t.Errorf("%d watchers registered for an answer from history", n)
			}
		})
	}
	t.Run("future index waits", func(t *testing.T) {
		w := e.watch(t, "/h", false, false, i2+1)
		i3 := e.set(t, "/h", "v3")
		wantEvent(t, w.event(t), v2store.ActionSet, "/h", i3)
	})
}

func testHistoryCleared(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, "/hub-cleared", 3)
	var idx []uint64
	for i := 0; i < 5; i++ {
		idx = append(idx, e.set(t, fmt.Sprintf("/k%d", i), "v"))
	}
	e.sync(t, "/", idx[4])
	// The ring holds the last 3 events: idx[2..4].
	w := e.watch(t, "/k0", false, false, idx[0])
	var got *v2store.Error
	if !errors.As(w.err, &got) {
		t.Fatalf("watch before the history: %v, want a v2 error", w.err)
	}
	want := v2store.Error{Code: 401, Message: "The event in requested index is outdated and cleared",
		Cause: fmt.Sprintf("the requested history has been cleared [%d/%d]", idx[2], idx[0]), Index: got.Index}
	if *got != want || got.Index < idx[4] {
		t.Errorf("error %+v, want %+v with index >= %d", *got, want, idx[4])
	}
	// The answer's headers: the store index, and the cluster.
	if w.index != got.Index || w.meta.ClusterID == 0 {
		t.Errorf("meta %+v for error index %d", w.meta, got.Index)
	}
	// The oldest event kept still answers.
	wantEvent(t, e.watch(t, "/", true, false, idx[2]).event(t), v2store.ActionSet, "/k2", idx[2])
	if n := e.hub.Watchers(); n != 0 {
		t.Errorf("%d watchers registered after answers from history", n)
	}
}

func testRecursive(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, "/hub-recursive", 0)
	e.set(t, "/dir", "", asDir)
	rec := e.watch(t, "/dir", true, false, 0)
	flat := e.watch(t, "/dir", false, false, 0)
	rootRec := e.watch(t, "/", true, false, 0)
	i := e.set(t, "/dir/sub/child", "c")
	wantEvent(t, rec.event(t), v2store.ActionSet, "/dir/sub/child", i)
	wantEvent(t, rootRec.event(t), v2store.ActionSet, "/dir/sub/child", i)
	// The non-recursive watcher ignores the child and sees the dir's own event.
	j := e.set(t, "/dir", "", asDir, withTTL(60), func(o *v2store.SetOptions) { b := true; o.PrevExist = &b })
	ev := flat.event(t)
	wantEvent(t, ev, v2store.ActionUpdate, "/dir", j)
	if !ev.Node.Dir {
		t.Errorf("dir event without dir: %+v", ev.Node)
	}
}

func testAncestorDelete(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, "/hub-ancestor", 0)
	e.set(t, "/anc/x/y", "v")
	below := e.watch(t, "/anc/x/y", false, false, 0)
	belowRec := e.watch(t, "/anc/x", true, false, 0)
	missing := e.watch(t, "/anc/never/written", false, false, 0) // non-existent keys may be watched
	unrelated := e.watch(t, "/ancestor", true, false, 0)
	i := e.del(t, "/anc", v2store.DeleteOptions{Recursive: true})
	for _, w := range []*watchCall{below, belowRec, missing} {
		ev := w.event(t)
		wantEvent(t, ev, v2store.ActionDelete, "/anc", i)
		if !ev.Node.Dir || ev.PrevNode == nil || !ev.PrevNode.Dir {
			t.Errorf("recursive delete event %+v / %+v", ev.Node, ev.PrevNode)
		}
	}
	// /ancestor shares the name's bytes, not the directory.
	j := e.set(t, "/ancestor/z", "z")
	wantEvent(t, unrelated.event(t), v2store.ActionSet, "/ancestor/z", j)
}

func testHidden(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, "/hub-hidden", 0)
	rec := e.watch(t, "/hid", true, false, 0)
	direct := e.watch(t, "/hid/_y", false, false, 0)
	insideHidden := e.watch(t, "/hid/_h", true, false, 0)
	ih := e.set(t, "/hid/_h/x", "hidden below")
	iy := e.set(t, "/hid/_y", "hidden")
	iv := e.set(t, "/hid/visible", "v")
	wantEvent(t, rec.event(t), v2store.ActionSet, "/hid/visible", iv)
	wantEvent(t, direct.event(t), v2store.ActionSet, "/hid/_y", iy)
	wantEvent(t, insideHidden.event(t), v2store.ActionSet, "/hid/_h/x", ih)
}

func testRefresh(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, "/hub-refresh", 0)
	e.set(t, "/r", "v", withTTL(60))
	w := e.watch(t, "/r", false, false, 0)
	rec := e.watch(t, "/", true, false, 0)
	refresh := func(ttl int) uint64 {
		d := time.Duration(ttl) * time.Second
		_, m, err := e.store.Put(context.Background(), "/r", v2store.SetOptions{Refresh: true, TTL: &d})
		if err != nil {
			t.Fatal(err)
		}
		return m.EtcdIndex
	}
	refresh(60)        // same ttl: lease renewed, no write
	ir := refresh(120) // new ttl: a write recorded as a refresh
	i := e.set(t, "/r", "after")
	for _, w := range []*watchCall{w, rec} {
		ev := w.event(t)
		wantEvent(t, ev, v2store.ActionSet, "/r", i)
		if *ev.Node.Value != "after" {
			t.Errorf("woken by %+v", ev.Node)
		}
	}
	// From history too, a refresh's index answers with the next event.
	wantEvent(t, e.watch(t, "/r", false, false, ir).event(t), v2store.ActionSet, "/r", i)
}

func testExpire(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, "/hub-expire", 0)
	// Leases run out after the member's minimum TTL (about 2 s): start both
	// expiries before waiting for either.
	e.set(t, "/exp", "soon", withTTL(1))
	e.set(t, "/expdir", "", asDir, withTTL(1))
	e.set(t, "/expdir/child", "c")
	e.set(t, "/del", "leased", withTTL(60))
	file := e.watch(t, "/exp", false, false, 0)
	child := e.watch(t, "/expdir/child", false, false, 0)
	deleted := e.watch(t, "/del", false, false, 0)

	i := e.del(t, "/del", v2store.DeleteOptions{})
	wantEvent(t, deleted.event(t), v2store.ActionDelete, "/del", i)

	ev := file.event(t)
	if ev.Action != v2store.ActionExpire || ev.Node.Key != "/exp" || ev.Node.Dir {
		t.Errorf("file expiry: %+v", ev)
	}
	if ev.PrevNode == nil || ev.PrevNode.Value == nil || *ev.PrevNode.Value != "soon" || ev.Node.CreatedIndex != ev.PrevNode.CreatedIndex {
		t.Errorf("file expiry prevNode %+v, node %+v", ev.PrevNode, ev.Node)
	}
	ev = child.event(t)
	if ev.Action != v2store.ActionExpire || ev.Node.Key != "/expdir" || !ev.Node.Dir {
		t.Errorf("a dir's expiry reaches the key below: %+v", ev.Node)
	}
	// The hub removes what was left below the expired dir.
	waitfor.True(t, hangGuard, "/expdir to be gone", func() bool {
		_, _, err := e.store.Get(context.Background(), "/expdir", v2store.GetOptions{Quorum: true})
		ve, ok := err.(*v2store.Error)
		return ok && ve.Code == v2store.EcodeKeyNotFound
	})
}

func testStream(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, "/hub-stream", 0)
	i0 := e.set(t, "/s/0", "v")
	w := e.watch(t, "/s", true, true, i0) // from history, then live
	i1 := e.set(t, "/s/1", "v")
	e.set(t, "/s/_hidden", "v")
	i2 := e.del(t, "/s/0", v2store.DeleteOptions{})
	wantEvent(t, w.event(t), v2store.ActionSet, "/s/0", i0)
	wantEvent(t, w.event(t), v2store.ActionSet, "/s/1", i1)
	wantEvent(t, w.event(t), v2store.ActionDelete, "/s/0", i2)
	select {
	case c, ok := <-w.wt.Changes():
		t.Fatalf("after the three events the stream gave %+v (open: %v)", c, ok)
	default:
	}
	if n := e.hub.Watchers(); n != 1 {
		t.Errorf("%d watchers, want the stream", n)
	}
	if got := gauge(t, e.reg, "etcdshim_v2_watch_streams"); got != 1 {
		t.Errorf("streams gauge %v, want 1", got)
	}
}

func testCancel(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, "/hub-cancel", 0)
	e.sync(t, "/", e.set(t, "/ready", "v")) // the hub is up
	base := runtime.NumGoroutine()
	var calls []*watchCall
	for i := 0; i < 50; i++ {
		calls = append(calls, e.watch(t, fmt.Sprintf("/w%d", i), i%2 == 0, i%5 == 0, 0))
	}
	if n := e.hub.Watchers(); n != 50 {
		t.Fatalf("%d watchers, want 50", n)
	}
	if got := gauge(t, e.reg, "etcdshim_v2_watch_waiters"); got != 50 {
		t.Errorf("waiters gauge %v, want 50", got)
	}
	for _, c := range calls {
		c.stop()
	}
	if n := e.hub.Watchers(); n != 0 {
		t.Errorf("%d watchers after every client went away", n)
	}
	if got := gauge(t, e.reg, "etcdshim_v2_watch_waiters"); got != 0 {
		t.Errorf("waiters gauge %v after cancel", got)
	}
	// Nothing is left running for them (the embedded member's own
	// goroutines come and go, hence a little slack and a retry).
	waitfor.True(t, hangGuard, fmt.Sprintf("the goroutines to return to about %d, as before the 50 watches", base), func() bool {
		return runtime.NumGoroutine() <= base+5
	})
	// A write after the cancellations reaches nobody and breaks nothing.
	i := e.set(t, "/w0", "late")
	wantEvent(t, e.watch(t, "/w0", false, false, i).event(t), v2store.ActionSet, "/w0", i)
}

func gauge(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += metricValue(m)
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}
