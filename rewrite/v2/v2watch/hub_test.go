package v2watch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2watch"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
		{"one upstream watch", testOneUpstreamWatch},
		{"resume revision", testResumeRevision},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, cc) })
	}
}

type upstream struct{ cc *grpc.ClientConn }

func (u upstream) ClientConn() grpc.ClientConnInterface { return u.cc }

// env is a hub and a v2 store on the same prefix.
type env struct {
	hub   *v2watch.Hub
	store *v2store.V3Store
	reg   *prometheus.Registry
}

func newEnv(t *testing.T, cc *grpc.ClientConn, prefix string, history int) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	h := v2watch.New(v2watch.Options{Prefix: prefix, History: history, Registerer: reg}, upstream{cc})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e := &env{hub: h, store: v2store.NewV3(cc, prefix), reg: reg}
	e.ready(t)
	return e
}

// ready returns once the hub has read the store index (its history starts
// there): a watch is registered only after that.
func (e *env) ready(t *testing.T) {
	t.Helper()
	w := e.watch(t, "/_ready", false, false, 0)
	w.cancel()
	w.ended(t)
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

// lineWriter is a ResponseWriter a test can read while ServeWatch writes:
// the status and each JSON line arrive on channels.
type lineWriter struct {
	header http.Header
	status chan int
	lines  chan string

	mu  sync.Mutex
	buf []byte
}

func newLineWriter() *lineWriter {
	return &lineWriter{header: http.Header{}, status: make(chan int, 1), lines: make(chan string, 1000)}
}

func (w *lineWriter) Header() http.Header { return w.header }
func (w *lineWriter) WriteHeader(code int) {
	select {
	case w.status <- code:
	default:
	}
}
func (w *lineWriter) Flush() {}
func (w *lineWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.lines <- string(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

// watchCall is one v2 wait=true request being served.
type watchCall struct {
	w      *lineWriter
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	index  uint64 // X-Etcd-Index
}

// hangGuard bounds every wait so that a broken hub fails instead of hanging;
// it is not a performance threshold.
const hangGuard = 20 * time.Second

func (e *env) watch(t *testing.T, key string, recursive, stream bool, waitIndex uint64) *watchCall {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &watchCall{w: newLineWriter(), cancel: cancel, done: make(chan struct{})}
	r := httptest.NewRequest(http.MethodGet, "/v2/keys"+key+"?wait=true", nil).WithContext(ctx)
	writeHeaders := func(w http.ResponseWriter, m v2store.Meta) {
		w.Header().Set("X-Etcd-Index", strconv.FormatUint(m.EtcdIndex, 10))
	}
	go func() {
		defer close(c.done)
		e.hub.ServeWatch(c.w, r, key, recursive, stream, waitIndex, writeHeaders)
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	// The status is written once the waiter is registered (or answered).
	select {
	case c.code = <-c.w.status:
	case <-time.After(hangGuard):
		t.Fatalf("watch %s: no response headers", key)
	}
	c.index, _ = strconv.ParseUint(c.w.header.Get("X-Etcd-Index"), 10, 64)
	return c
}

func (c *watchCall) line(t *testing.T) string {
	t.Helper()
	select {
	case l := <-c.w.lines:
		return l
	case <-time.After(hangGuard):
		t.Fatal("no event")
	}
	return ""
}

func (c *watchCall) event(t *testing.T) *v2store.Event {
	t.Helper()
	var ev v2store.Event
	l := c.line(t)
	if err := json.Unmarshal([]byte(l), &ev); err != nil {
		t.Fatalf("event %q: %v", l, err)
	}
	return &ev
}

// ended waits for the request to finish (a long poll ends after its event).
func (c *watchCall) ended(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(hangGuard):
		t.Fatal("the watch did not end")
	}
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
	if w.code != http.StatusOK || w.index < before {
		t.Fatalf("watch answered %d with X-Etcd-Index %d (store at %d)", w.code, w.index, before)
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
	w.ended(t)
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
			w.ended(t)
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
	if w.code != http.StatusBadRequest {
		t.Errorf("status %d, want 400", w.code)
	}
	var got v2store.Error
	if err := json.Unmarshal([]byte(w.line(t)), &got); err != nil {
		t.Fatal(err)
	}
	want := v2store.Error{Code: 401, Message: "The event in requested index is outdated and cleared",
		Cause: fmt.Sprintf("the requested history has been cleared [%d/%d]", idx[2], idx[0]), Index: got.Index}
	if got != want || got.Index < idx[4] {
		t.Errorf("error %+v, want %+v with index >= %d", got, want, idx[4])
	}
	if w.index != got.Index || w.w.header.Get("X-Etcd-Cluster-Id") == "" {
		t.Errorf("headers %v for error index %d", w.w.header, got.Index)
	}
	w.ended(t)
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
	deadline := time.Now().Add(hangGuard)
	for {
		_, _, err := e.store.Get(context.Background(), "/expdir", v2store.GetOptions{Quorum: true})
		if ve, ok := err.(*v2store.Error); ok && ve.Code == v2store.EcodeKeyNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/expdir still there: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	case <-w.done:
		t.Fatal("the stream ended")
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
		c.cancel()
	}
	for _, c := range calls {
		c.ended(t)
	}
	if n := e.hub.Watchers(); n != 0 {
		t.Errorf("%d watchers after every client went away", n)
	}
	if got := gauge(t, e.reg, "etcdshim_v2_watch_waiters"); got != 0 {
		t.Errorf("waiters gauge %v after cancel", got)
	}
	// Nothing is left running for them (the embedded member's own
	// goroutines come and go, hence a little slack and a retry).
	deadline := time.Now().Add(hangGuard)
	for runtime.NumGoroutine() > base+5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before the 50 watches", runtime.NumGoroutine(), base)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A write after the cancellations reaches nobody and breaks nothing.
	i := e.set(t, "/w0", "late")
	wantEvent(t, e.watch(t, "/w0", false, false, i).event(t), v2store.ActionSet, "/w0", i)
}

func testOneUpstreamWatch(t *testing.T, cc *grpc.ClientConn) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up := &countingUpstream{cc: cc}
	h := v2watch.New(v2watch.Options{Prefix: "/hub-upstream"}, up)
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	e := &env{hub: h, store: v2store.NewV3(cc, "/hub-upstream")}
	e.ready(t)
	var calls []*watchCall
	for i := 0; i < 200; i++ {
		calls = append(calls, e.watch(t, "/many", i%2 == 0, false, 0))
	}
	if n := e.hub.Watchers(); n != 200 {
		t.Fatalf("%d waiters registered, want 200", n)
	}
	i := e.set(t, "/many", "wake")
	for _, c := range calls {
		wantEvent(t, c.event(t), v2store.ActionSet, "/many", i)
	}
	// A second round on the same upstream watch.
	w := e.watch(t, "/many", false, false, 0)
	j := e.set(t, "/many", "again")
	wantEvent(t, w.event(t), v2store.ActionSet, "/many", j)
	if streams, creates := up.counts(); streams != 1 || creates != 1 {
		t.Errorf("the hub opened %d watch streams with %d create requests for 201 v2 waiters, want 1 and 1", streams, creates)
	}
	// The member agrees: stopping the hub removes exactly one watcher.
	// (Its gauge is process-wide and lags, hence the retries.)
	withHub := memberWatchers(t)
	cancel()
	<-done
	deadline := time.Now().Add(hangGuard)
	for memberWatchers(t) != withHub-1 {
		if time.Now().After(deadline) {
			t.Fatalf("member has %v watchers after the hub stopped, %v with it", memberWatchers(t), withHub)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countingUpstream counts the watch streams the hub opens and the watches
// it creates on them.
type countingUpstream struct {
	cc *grpc.ClientConn

	mu               sync.Mutex
	streams, creates int
}

func (u *countingUpstream) ClientConn() grpc.ClientConnInterface { return (*countingConn)(u) }

func (u *countingUpstream) counts() (streams, creates int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.streams, u.creates
}

type countingConn countingUpstream

func (c *countingConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.cc.Invoke(ctx, method, args, reply, opts...)
}

func (c *countingConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := c.cc.NewStream(ctx, desc, method, opts...)
	if err != nil || method != "/etcdserverpb.Watch/Watch" {
		return s, err
	}
	c.mu.Lock()
	c.streams++
	c.mu.Unlock()
	return &countingStream{ClientStream: s, c: c}, nil
}

type countingStream struct {
	grpc.ClientStream
	c *countingConn
}

func (s *countingStream) SendMsg(m any) error {
	if r, ok := m.(*pb.WatchRequest); ok && r.GetCreateRequest() != nil {
		s.c.mu.Lock()
		s.c.creates++
		s.c.mu.Unlock()
	}
	return s.ClientStream.SendMsg(m)
}

// testResumeRevision checks where the hub resumes a broken upstream watch:
// after the last event it saw, not at a response header's revision, which
// is the member's current one even while a watch is still catching up.
func testResumeRevision(t *testing.T, _ *grpc.ClientConn) {
	const prefix = "/hub-resume"
	put := func(rev int64, key, value string) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{
			Key: []byte(prefix + key), Value: []byte(value), CreateRevision: rev, ModRevision: rev, Version: 1}}
	}
	hd := &pb.ResponseHeader{ClusterId: 1, RaftTerm: 2, Revision: 5000}
	up := &scriptedUpstream{rev: 10, creates: make(chan *pb.WatchCreateRequest, 10), script: [][]*pb.WatchResponse{
		// The member is at 5000; the watch from 11 gets a first batch of
		// its backlog (up to 12, a refresh no v2 watcher sees), then breaks.
		{
			{Header: hd, Created: true},
			{Header: hd, Events: []*mvccpb.Event{put(11, "/a", "v"),
				put(12, "/.", v2store.ActionRefresh), put(12, "/a", "v")}},
		},
		// Synced, the watch gets a progress notification: its header holds.
		{
			{Header: hd, Created: true},
			{Header: hd},
		},
	}}
	h := v2watch.New(v2watch.Options{Prefix: prefix}, up)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for i, want := range []int64{11, 13, 5001} {
		select {
		case cr := <-up.creates:
			if cr.StartRevision != want {
				t.Errorf("watch %d created from revision %d, want %d", i, cr.StartRevision, want)
			}
		case <-time.After(hangGuard):
			t.Fatalf("the hub did not create watch %d", i)
		}
	}
	// The events delivered before the break were published.
	e := &env{hub: h}
	wantEvent(t, e.watch(t, "/a", false, false, 11).event(t), v2store.ActionSet, "/a", 11)
}

// scriptedUpstream is a member at revision rev whose watch streams play a
// script: stream i sends script[i] after its create request, then breaks;
// streams past the script stay open and quiet. Create requests go to
// creates.
type scriptedUpstream struct {
	rev     int64
	script  [][]*pb.WatchResponse
	creates chan *pb.WatchCreateRequest

	mu      sync.Mutex
	streams int
}

func (u *scriptedUpstream) ClientConn() grpc.ClientConnInterface { return u }

func (u *scriptedUpstream) Invoke(_ context.Context, method string, _, reply any, _ ...grpc.CallOption) error {
	r, ok := reply.(*pb.RangeResponse)
	if !ok {
		return status.Errorf(codes.Unimplemented, "scripted member: %s", method)
	}
	r.Header = &pb.ResponseHeader{ClusterId: 1, RaftTerm: 2, Revision: u.rev}
	return nil
}

func (u *scriptedUpstream) NewStream(ctx context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	if method != "/etcdserverpb.Watch/Watch" {
		return nil, status.Errorf(codes.Unimplemented, "scripted member: %s", method)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	s := &scriptedStream{ctx: ctx, u: u}
	if u.streams < len(u.script) {
		s.resps, s.breaks = u.script[u.streams], true
	}
	u.streams++
	return s, nil
}

type scriptedStream struct {
	grpc.ClientStream // nil: the hub uses SendMsg and RecvMsg only
	ctx               context.Context
	u                 *scriptedUpstream
	resps             []*pb.WatchResponse
	breaks            bool
}

func (s *scriptedStream) SendMsg(m any) error {
	if cr := m.(*pb.WatchRequest).GetCreateRequest(); cr != nil {
		s.u.creates <- cr
	}
	return nil
}

func (s *scriptedStream) RecvMsg(m any) error {
	if len(s.resps) == 0 {
		if s.breaks {
			return status.Error(codes.Unavailable, "scripted stream break")
		}
		<-s.ctx.Done()
		return status.FromContextError(s.ctx.Err()).Err()
	}
	r, next := m.(*pb.WatchResponse), s.resps[0]
	s.resps = s.resps[1:]
	r.Header, r.Created, r.Canceled, r.Events = next.Header, next.Created, next.Canceled, next.Events
	return nil
}

// memberWatchers is the embedded member's count of v3 watchers (it
// registers its metrics in the default registry).
func memberWatchers(t *testing.T) float64 {
	t.Helper()
	return gauge(t, prometheus.DefaultGatherer, "etcd_debugging_mvcc_watcher_total")
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
