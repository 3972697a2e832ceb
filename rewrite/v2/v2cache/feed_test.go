package v2cache

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
)

func batch(rev int64, key string, valueBytes int) *v2follow.Batch {
	return &v2follow.Batch{Revision: rev, Events: []*mvccpb.Event{{Type: mvccpb.PUT,
		Kv: &mvccpb.KeyValue{Key: []byte(key), Value: make([]byte, valueBytes), ModRevision: rev, CreateRevision: rev}}}}
}

func describe(ns []notice) string {
	var out []string
	for _, n := range ns {
		switch {
		case n.resumed:
			out = append(out, fmt.Sprintf("resumed %d", n.rev))
		case n.batch != nil:
			out = append(out, fmt.Sprintf("batch %d", n.batch.Revision))
		case n.broken:
			out = append(out, fmt.Sprintf("broken %d", n.compacted))
		}
	}
	return strings.Join(out, ", ")
}

// TestQueue: batches beyond the bound are dropped, how far they went is
// kept, and what says where the watch is survives.
func TestQueue(t *testing.T) {
	for _, c := range []struct {
		name     string
		push     func(q *queue)
		want     string
		overflow bool
		dropped  int64
	}{
		{"in order", func(q *queue) {
			q.Resumed(10, 7)
			q.Apply(batch(11, "/a", 10))
			q.Broken(0, errors.New("broke"))
		}, "resumed 10, batch 11, broken 0", false, 0},
		{"over the bound", func(q *queue) {
			q.Resumed(10, 7)
			q.Apply(batch(11, "/a", 10))
			q.Apply(batch(12, "/b", 1000))
			q.Broken(20, errors.New("compacted"))
			q.Apply(batch(21, "/c", 1))
			q.Resumed(21, 7)
		}, "resumed 10, broken 20, resumed 21", true, 21},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := newQueue(500)
			c.push(q)
			ns, overflow, dropped := q.take()
			if got := describe(ns); got != c.want || overflow != c.overflow || dropped != c.dropped {
				t.Fatalf("took %q overflow %v dropped %d, want %q %v %d", got, overflow, dropped, c.want, c.overflow, c.dropped)
			}
			if ns, overflow, _ := q.take(); len(ns) != 0 || overflow {
				t.Fatal("a second take found something")
			}
		})
	}
}

// TestFollowHandle: what the cache's view of the follower's watch becomes
// after the follower's notices.
func TestFollowHandle(t *testing.T) {
	loaded := func() *state {
		st := &state{kvs: newTree(), base: 15, rev: 15}
		_ = st.put(batch(5, "/old", 1).Events[0].Kv)
		return st
	}
	for _, c := range []struct {
		name     string
		ns       []notice
		overflow bool
		dropped  int64
		// want: live, trusted, loaded and pos after, and the keys held.
		live, trusted, hasState bool
		pos                     int64
		keys                    string
	}{
		{"a batch applies after the load's revision only",
			[]notice{{batch: batch(14, "/before", 1)}, {batch: batch(16, "/after", 1)}}, false, 0,
			true, true, true, 16, "/after /old"},
		{"a break keeps the state for the resumed watch", []notice{{broken: true}}, false, 0,
			false, false, true, 15, "/old"},
		{"a compaction drops the state", []notice{{broken: true, compacted: 30}}, false, 0,
			false, false, false, 29, ""},
		{"a resume asks for the member's version again", []notice{{resumed: true, rev: 15, member: 9}}, false, 0,
			true, false, true, 15, "/old"},
		{"dropped batches drop the state", nil, true, 40,
			true, true, false, 40, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &follow{c: &Cache{log: zap.NewNop(), m: newMetrics(nil)}, st: loaded(), live: true, trusted: true, member: 7, pos: 15}
			if err := f.handle(c.ns, c.overflow, c.dropped); err != nil {
				t.Fatal(err)
			}
			var keys []string
			if f.st != nil {
				f.st.kvs.Ascend(func(kv *mvccpb.KeyValue) bool { keys = append(keys, string(kv.Key)); return true })
			}
			if f.live != c.live || f.trusted != c.trusted || (f.st != nil) != c.hasState || f.pos != c.pos || strings.Join(keys, " ") != c.keys {
				t.Fatalf("live %v trusted %v loaded %v pos %d keys %q", f.live, f.trusted, f.st != nil, f.pos, keys)
			}
		})
	}
}
