package v2watch_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2watch"
)

// fakeFeed stands for the follower: the test tells the hub what the
// follower would.
type fakeFeed struct {
	sub   v2follow.Subscriber
	index uint64 // the store index StoreIndex answers
}

func (f *fakeFeed) Subscribe(s v2follow.Subscriber) func() { f.sub = s; return func() {} }
func (f *fakeFeed) Unavailable() error                     { return nil }
func (f *fakeFeed) StoreIndex(context.Context) (v2store.Meta, error) {
	return v2store.Meta{EtcdIndex: f.index, RaftIndex: f.index, RaftTerm: 2, ClusterID: 1}, nil
}

// applied tells the hub that the follower delivered changes at these
// indexes, each a set of key.
func (f *fakeFeed) applied(key string, idx ...uint64) {
	b := &v2follow.Batch{}
	for _, i := range idx {
		v := fmt.Sprint(i)
		b.Changes = append(b.Changes, &v2store.Change{Index: i, Path: key,
			Event: &v2store.Event{Action: v2store.ActionSet, Node: &v2store.Node{Key: key, Value: &v, ModifiedIndex: i, CreatedIndex: i}}})
		b.Revision = int64(i)
		f.index = max(f.index, i)
	}
	f.sub.Apply(b)
}

func newRing(t *testing.T, history int, start uint64) (*v2watch.Hub, *fakeFeed) {
	t.Helper()
	f := &fakeFeed{index: start}
	h := v2watch.New(v2watch.Options{Prefix: "/p", History: history}, f, nil)
	f.sub.Resumed(int64(start), 7)
	return h, f
}

func watchRing(t *testing.T, h *v2watch.Hub, key string, o v2store.WatchOptions) (v2store.Watcher, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	w, _, err := h.Watch(ctx, key, o)
	if err == nil {
		t.Cleanup(w.Stop)
	}
	return w, err
}

// got is what a watcher holds now: the indexes of its events, and whether
// its channel was closed.
func got(w v2store.Watcher) (idx []uint64, closed bool) {
	for {
		select {
		case c, ok := <-w.Changes():
			if !ok {
				return idx, true
			}
			idx = append(idx, c.Index)
		default:
			return idx, false
		}
	}
}

func cleared(err error) bool {
	var ve *v2store.Error
	return errors.As(err, &ve) && ve.Code == v2store.EcodeEventIndexCleared
}

// TestRing: the history of the last N events, the gaps a compaction leaves
// in it, and who is woken, without a member.
func TestRing(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a long poll waits for the next event on its key", func(t *testing.T) {
			h, f := newRing(t, 10, 100)
			w, err := watchRing(t, h, "/k", v2store.WatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			f.applied("/other", 101)
			f.applied("/k", 102, 103)
			if idx, closed := got(w); fmt.Sprint(idx) != "[102]" || closed {
				t.Fatalf("got %v (closed %v), want [102]", idx, closed)
			}
			if n := h.Watchers(); n != 0 {
				t.Fatalf("%d watchers after the long poll's event", n)
			}
		}},
		{"a waitIndex in the history is answered at once", func(t *testing.T) {
			h, f := newRing(t, 10, 100)
			f.applied("/k", 101, 102, 103)
			w, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: 102})
			if err != nil {
				t.Fatal(err)
			}
			if idx, _ := got(w); fmt.Sprint(idx) != "[102]" {
				t.Fatalf("got %v, want [102]", idx)
			}
		}},
		{"a waitIndex before the history start is cleared", func(t *testing.T) {
			h, _ := newRing(t, 10, 100)
			_, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: 100})
			var ve *v2store.Error
			if !errors.As(err, &ve) || *ve != (v2store.Error{Code: v2store.EcodeEventIndexCleared,
				Message: "The event in requested index is outdated and cleared",
				Cause:   "the requested history has been cleared [101/100]", Index: 100}) {
				t.Fatalf("waitIndex 100 with history from 101: %#v", err)
			}
		}},
		{"evicted events are cleared", func(t *testing.T) {
			h, f := newRing(t, 3, 100)
			f.applied("/k", 101, 102, 103, 104, 105)
			_, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: 102})
			if !cleared(err) {
				t.Fatalf("waitIndex 102 after eviction: %v", err)
			}
			w, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: 103})
			if err != nil {
				t.Fatal(err)
			}
			if idx, _ := got(w); fmt.Sprint(idx) != "[103]" {
				t.Fatalf("oldest kept: %v, want [103]", idx)
			}
		}},
		{"a compaction gap: before it 401, after it served", func(t *testing.T) {
			h, f := newRing(t, 10, 100)
			f.applied("/k", 101)
			behind, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: 150})
			if err != nil {
				t.Fatal(err)
			}
			ahead, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: 250})
			if err != nil {
				t.Fatal(err)
			}
			f.sub.Broken(0, errors.New("stream broke")) // no gap: nothing lost
			if _, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: 101}); err != nil {
				t.Fatalf("history after a break without a gap: %v", err)
			}
			f.sub.Broken(200, errors.New("compacted"))
			if _, closed := got(behind); !closed {
				t.Fatal("a watcher waiting for 150 outlived a compaction at 200")
			}
			if idx, closed := got(ahead); len(idx) != 0 || closed {
				t.Fatalf("a watcher waiting for 250: %v (closed %v)", idx, closed)
			}
			for _, wi := range []uint64{101, 199} {
				if _, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: wi}); !cleared(err) {
					t.Fatalf("waitIndex %d before the gap: %v, want 401", wi, err)
				}
			}
			f.sub.Resumed(199, 7)
			f.applied("/k", 200, 250)
			w, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: 200})
			if err != nil {
				t.Fatal(err)
			}
			if idx, _ := got(w); fmt.Sprint(idx) != "[200]" {
				t.Fatalf("waitIndex at the gap: %v, want [200]", idx)
			}
			if idx, _ := got(ahead); fmt.Sprint(idx) != "[250]" {
				t.Fatalf("the watcher waiting for 250 got %v", idx)
			}
		}},
		{"a stream gets history, then live events", func(t *testing.T) {
			h, f := newRing(t, 10, 100)
			f.applied("/k", 101, 102)
			w, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: 101, Stream: true})
			if err != nil {
				t.Fatal(err)
			}
			f.applied("/k", 103)
			if idx, closed := got(w); fmt.Sprint(idx) != "[101 102 103]" || closed {
				t.Fatalf("got %v (closed %v)", idx, closed)
			}
			if n := h.Watchers(); n != 1 {
				t.Fatalf("%d watchers, want the stream", n)
			}
		}},
		{"a stream that falls 100 events behind is closed", func(t *testing.T) {
			h, f := newRing(t, 1000, 100)
			w, err := watchRing(t, h, "/k", v2store.WatchOptions{Stream: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := uint64(101); i <= 201; i++ {
				f.applied("/k", i)
			}
			if idx, closed := got(w); len(idx) != 100 || !closed {
				t.Fatalf("%d events (closed %v), want 100 and closed", len(idx), closed)
			}
		}},
		{"a later resume keeps the history", func(t *testing.T) {
			h, f := newRing(t, 10, 100)
			f.applied("/k", 101)
			f.sub.Resumed(101, 8)
			w, err := watchRing(t, h, "/k", v2store.WatchOptions{WaitIndex: 101})
			if err != nil {
				t.Fatal(err)
			}
			if idx, _ := got(w); fmt.Sprint(idx) != "[101]" {
				t.Fatalf("got %v, want [101]", idx)
			}
		}},
		{"not following yet: the watch says why after a while", func(t *testing.T) {
			f := &fakeFeed{}
			h := v2watch.New(v2watch.Options{Prefix: "/p"}, f, nil)
			_, err := watchRing(t, h, "/k", v2store.WatchOptions{})
			if err == nil || err.Error() != "the v2 follower has not read the store index yet" {
				t.Fatalf("watch before the follower's first watch: %v", err)
			}
		}},
	} {
		t.Run(c.name, c.run)
	}
}
