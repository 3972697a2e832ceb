package v2watch

import (
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestConvertDirectoryRecords: the action of a revision comes from the
// directory record ("<dir>/.") written with it, wherever the directory is;
// a record's own deletion (with its directory) is no event.
func TestConvertDirectoryRecords(t *testing.T) {
	const prefix = "/p"
	put := func(key, value string, lease int64) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(prefix + key), Value: []byte(value), ModRevision: 9, CreateRevision: 9, Lease: lease}}
	}
	del := func(key string, lease int64) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(prefix + key), ModRevision: 9},
			PrevKv: &mvccpb.KeyValue{Key: []byte(prefix + key), CreateRevision: 3, ModRevision: 4, Lease: lease}}
	}
	cases := []struct {
		name   string
		evs    []*mvccpb.Event
		action string // "" for no v2 event
		key    string
		dir    bool
	}{
		{"create in a directory", []*mvccpb.Event{put("/alice/b", "1", 0), put("/alice/.", v2store.ActionCreate, 0)}, v2store.ActionCreate, "/alice/b", false},
		{"cas at the root", []*mvccpb.Event{put("/a", "1", 0), put("/.", v2store.ActionCompareAndSwap, 0)}, v2store.ActionCompareAndSwap, "/a", false},
		{"set with a new parent", []*mvccpb.Event{put("/alice/", "", 0), put("/alice/sub/", "", 0), put("/alice/sub/x", "1", 0), put("/alice/sub/.", v2store.ActionSet, 0)}, v2store.ActionSet, "/alice/sub/x", false},
		{"compare and delete", []*mvccpb.Event{del("/alice/b", 0), put("/alice/.", v2store.ActionCompareAndDelete, 0)}, v2store.ActionCompareAndDelete, "/alice/b", false},
		{"recursive delete takes the record along", []*mvccpb.Event{del("/alice/d/", 0), del("/alice/d/.", 0), del("/alice/d/x", 0), put("/alice/.", v2store.ActionDelete, 0)}, v2store.ActionDelete, "/alice/d", true},
		{"explicit delete of a leased key", []*mvccpb.Event{del("/alice/t", 7), put("/alice/.", v2store.ActionDelete, 0)}, v2store.ActionDelete, "/alice/t", false},
		{"no record: a v3 client's put", []*mvccpb.Event{put("/alice/v3", "x", 0)}, v2store.ActionSet, "/alice/v3", false},
		{"no record: a lease ran out", []*mvccpb.Event{del("/alice/t", 7)}, v2store.ActionExpire, "/alice/t", false},
		{"refresh is no event", []*mvccpb.Event{put("/alice/t", "v", 8), put("/alice/.", v2store.ActionRefresh, 0)}, "", "", false},
		{"a record alone is no event", []*mvccpb.Event{put("/alice/.", v2store.ActionSet, 0)}, "", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := convert(prefix, 9, c.evs)
			if c.action == "" {
				if ev != nil {
					t.Fatalf("an event: %+v", ev.ev)
				}
				return
			}
			if ev == nil || ev.ev.Action != c.action || ev.key != c.key || ev.dir != c.dir {
				t.Fatalf("got %+v", ev)
			}
		})
	}
}
