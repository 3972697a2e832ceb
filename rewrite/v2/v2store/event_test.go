package v2store_test

import (
	"encoding/json"
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// kvs builds the v3 watch events v2 writes produce, under one prefix.
type kvs struct{ prefix string }

// kv is a key-value as the member stores it.
func (b kvs) kv(key, value string, create, mod, lease int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(b.prefix + key), Value: []byte(value), CreateRevision: create, ModRevision: mod, Lease: lease}
}

// put is a PUT at rev of key (created at create) with its previous
// key-value, nil when the key is new.
func (b kvs) put(rev int64, key, value string, create, lease int64, prev *mvccpb.KeyValue) *mvccpb.Event {
	return &mvccpb.Event{Type: mvccpb.PUT, Kv: b.kv(key, value, create, rev, lease), PrevKv: prev}
}

// record is the directory record a v2 write puts with the action.
func (b kvs) record(rev int64, dir, action string) *mvccpb.Event {
	if dir == "/" {
		dir = ""
	}
	return b.put(rev, dir+"/.", action, 1, 0, nil)
}

// del is a DELETE at rev of key, which was prev.
func (b kvs) del(rev int64, key string, prev *mvccpb.KeyValue) *mvccpb.Event {
	return &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(b.prefix + key), ModRevision: rev}, PrevKv: prev}
}

func str(s string) *string { return &s }

func file(key, value string, mod, create uint64) *v2store.Node {
	return &v2store.Node{Key: key, Value: str(value), ModifiedIndex: mod, CreatedIndex: create}
}

func dir(key string, mod, create uint64) *v2store.Node {
	return &v2store.Node{Key: key, Dir: true, ModifiedIndex: mod, CreatedIndex: create}
}

func change(index uint64, action string, node, prev *v2store.Node) *v2store.Change {
	return &v2store.Change{Index: index, Path: node.Key, Dir: node.Dir,
		Event: &v2store.Event{Action: action, Node: node, PrevNode: prev}}
}

// TestChanges: each revision of v3 events becomes the v2 event 3.4 would
// have sent for the write, with the action from the directory record.
func TestChanges(t *testing.T) {
	for _, prefix := range []string{"", "/v2"} {
		b := kvs{prefix}
		cases := []struct {
			name string
			evs  []*mvccpb.Event
			want []*v2store.Change
		}{
			{"create in a directory",
				[]*mvccpb.Event{b.put(9, "/a/b", "1", 9, 0, nil), b.record(9, "/a", v2store.ActionCreate)},
				[]*v2store.Change{change(9, v2store.ActionCreate, file("/a/b", "1", 9, 9), nil)}},
			{"set over a value: prevNode",
				[]*mvccpb.Event{b.put(9, "/a/b", "2", 4, 0, b.kv("/a/b", "1", 4, 6, 0)), b.record(9, "/a", v2store.ActionSet)},
				[]*v2store.Change{change(9, v2store.ActionSet, file("/a/b", "2", 9, 4), file("/a/b", "1", 6, 4))}},
			{"compare and swap at the root",
				[]*mvccpb.Event{b.put(9, "/a", "2", 3, 0, b.kv("/a", "1", 3, 3, 0)), b.record(9, "/", v2store.ActionCompareAndSwap)},
				[]*v2store.Change{change(9, v2store.ActionCompareAndSwap, file("/a", "2", 9, 3), file("/a", "1", 3, 3))}},
			{"set with new parents: the deepest file",
				[]*mvccpb.Event{b.put(9, "/a/", "", 9, 0, nil), b.put(9, "/a/b/", "", 9, 0, nil), b.put(9, "/a/b/x", "1", 9, 0, nil),
					b.record(9, "/a/b", v2store.ActionSet)},
				[]*v2store.Change{change(9, v2store.ActionSet, file("/a/b/x", "1", 9, 9), nil)}},
			{"mkdir: the directory, no value",
				[]*mvccpb.Event{b.put(9, "/a/", "", 9, 0, nil), b.put(9, "/a/d/", "", 9, 0, nil), b.record(9, "/a", v2store.ActionCreate)},
				[]*v2store.Change{change(9, v2store.ActionCreate, dir("/a/d", 9, 9), nil)}},
			{"a file with a TTL: no ttl or expiration in the event",
				[]*mvccpb.Event{b.put(9, "/t", "v", 9, 77, nil), b.record(9, "/", v2store.ActionSet)},
				[]*v2store.Change{change(9, v2store.ActionSet, file("/t", "v", 9, 9), nil)}},
			{"a directory with a TTL",
				[]*mvccpb.Event{b.put(9, "/td/", "", 9, 77, nil), b.record(9, "/", v2store.ActionCreate)},
				[]*v2store.Change{change(9, v2store.ActionCreate, dir("/td", 9, 9), nil)}},
			{"updatedir: prevNode is the directory",
				[]*mvccpb.Event{b.put(9, "/td/", "", 5, 78, b.kv("/td/", "", 5, 5, 77)), b.record(9, "/", v2store.ActionUpdate)},
				[]*v2store.Change{change(9, v2store.ActionUpdate, dir("/td", 9, 5), dir("/td", 5, 5))}},
			{"a directory replacing a file",
				[]*mvccpb.Event{b.del(9, "/f", b.kv("/f", "old", 2, 3, 0)), b.put(9, "/f/", "", 9, 0, nil), b.record(9, "/", v2store.ActionSet)},
				[]*v2store.Change{change(9, v2store.ActionSet, dir("/f", 9, 9), file("/f", "old", 3, 2))}},
			{"delete",
				[]*mvccpb.Event{b.del(9, "/a/b", b.kv("/a/b", "1", 3, 4, 0)), b.record(9, "/a", v2store.ActionDelete)},
				[]*v2store.Change{change(9, v2store.ActionDelete, &v2store.Node{Key: "/a/b", ModifiedIndex: 9, CreatedIndex: 3}, file("/a/b", "1", 4, 3))}},
			{"compare and delete",
				[]*mvccpb.Event{b.del(9, "/a/b", b.kv("/a/b", "1", 3, 4, 0)), b.record(9, "/a", v2store.ActionCompareAndDelete)},
				[]*v2store.Change{change(9, v2store.ActionCompareAndDelete, &v2store.Node{Key: "/a/b", ModifiedIndex: 9, CreatedIndex: 3}, file("/a/b", "1", 4, 3))}},
			{"recursive delete: the directory, its record deleted along",
				[]*mvccpb.Event{b.del(9, "/a/d/", b.kv("/a/d/", "", 2, 2, 0)), b.del(9, "/a/d/.", b.kv("/a/d/.", "set", 2, 5, 0)),
					b.del(9, "/a/d/x", b.kv("/a/d/x", "1", 5, 5, 0)), b.record(9, "/a", v2store.ActionDelete)},
				[]*v2store.Change{change(9, v2store.ActionDelete, dir("/a/d", 9, 2), dir("/a/d", 2, 2))}},
			{"rmdir of an empty directory",
				[]*mvccpb.Event{b.del(9, "/e/", b.kv("/e/", "", 4, 4, 0)), b.record(9, "/", v2store.ActionDelete)},
				[]*v2store.Change{change(9, v2store.ActionDelete, dir("/e", 9, 4), dir("/e", 4, 4))}},
			{"a v3 client deletes an implicit directory's keys",
				[]*mvccpb.Event{b.del(9, "/i/x", b.kv("/i/x", "1", 3, 3, 0)), b.del(9, "/i/y", b.kv("/i/y", "2", 4, 4, 0))},
				[]*v2store.Change{change(9, v2store.ActionDelete, dir("/i/x", 9, 3), file("/i/x", "1", 3, 3))}},
			{"explicit delete of a leased key",
				[]*mvccpb.Event{b.del(9, "/t", b.kv("/t", "v", 3, 3, 77)), b.record(9, "/", v2store.ActionDelete)},
				[]*v2store.Change{change(9, v2store.ActionDelete, &v2store.Node{Key: "/t", ModifiedIndex: 9, CreatedIndex: 3}, file("/t", "v", 3, 3))}},
			{"expire: a leased key deleted without a record",
				[]*mvccpb.Event{b.del(9, "/t", b.kv("/t", "v", 3, 3, 77))},
				[]*v2store.Change{change(9, v2store.ActionExpire, &v2store.Node{Key: "/t", ModifiedIndex: 9, CreatedIndex: 3}, file("/t", "v", 3, 3))}},
			{"expire of a directory: its marker's lease",
				[]*mvccpb.Event{b.del(9, "/td/", b.kv("/td/", "", 3, 3, 77))},
				[]*v2store.Change{change(9, v2store.ActionExpire, dir("/td", 9, 3), dir("/td", 3, 3))}},
			{"a v3 client's put", []*mvccpb.Event{b.put(9, "/v3", "x", 9, 0, nil)},
				[]*v2store.Change{change(9, v2store.ActionSet, file("/v3", "x", 9, 9), nil)}},
			{"a v3 client's delete", []*mvccpb.Event{b.del(9, "/v3", b.kv("/v3", "x", 2, 2, 0))},
				[]*v2store.Change{change(9, v2store.ActionDelete, &v2store.Node{Key: "/v3", ModifiedIndex: 9, CreatedIndex: 2}, file("/v3", "x", 2, 2))}},
			{"refresh is no event", []*mvccpb.Event{b.put(9, "/t", "v", 3, 78, b.kv("/t", "v", 3, 3, 77)), b.record(9, "/", v2store.ActionRefresh)}, nil},
			{"an expired directory's leftovers are no event",
				[]*mvccpb.Event{b.del(9, "/td/x", b.kv("/td/x", "1", 4, 4, 0)), b.record(9, "/td", v2store.ActionExpireSubtree)}, nil},
			{"a record alone is no event", []*mvccpb.Event{b.record(9, "/a", v2store.ActionSet)}, nil},
			{"several revisions: one change each, in order, none for a refresh",
				[]*mvccpb.Event{
					b.put(9, "/k", "1", 9, 0, nil), b.record(9, "/", v2store.ActionCreate),
					b.put(10, "/t", "v", 3, 78, b.kv("/t", "v", 3, 3, 77)), b.record(10, "/", v2store.ActionRefresh),
					b.del(11, "/k", b.kv("/k", "1", 9, 9, 0)), b.record(11, "/", v2store.ActionCompareAndDelete),
				},
				[]*v2store.Change{
					change(9, v2store.ActionCreate, file("/k", "1", 9, 9), nil),
					change(11, v2store.ActionCompareAndDelete, &v2store.Node{Key: "/k", ModifiedIndex: 11, CreatedIndex: 9}, file("/k", "1", 9, 9)),
				}},
		}
		for _, c := range cases {
			t.Run("prefix "+prefix+"/"+c.name, func(t *testing.T) {
				got := v2store.NewLayout(prefix).Changes(c.evs)
				if g, w := dump(t, got), dump(t, c.want); g != w {
					t.Errorf("got  %s\nwant %s", g, w)
				}
			})
		}
	}
}

// dump shows changes with every field, for comparing them.
func dump(t *testing.T, cs []*v2store.Change) string {
	t.Helper()
	b, err := json.Marshal(cs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestChangeMatches: which watchers see a change, as 3.4's watcher hub
// decides.
func TestChangeMatches(t *testing.T) {
	set := func(p string) *v2store.Change {
		return change(9, v2store.ActionSet, file(p, "v", 9, 9), nil)
	}
	delDir := func(action, p string) *v2store.Change {
		return change(9, action, dir(p, 9, 1), dir(p, 1, 1))
	}
	cases := []struct {
		name      string
		c         *v2store.Change
		key       string
		recursive bool
		want      bool
	}{
		{"the key itself", set("/a/b"), "/a/b", false, true},
		{"a child, not recursive", set("/a/b"), "/a", false, false},
		{"a child, recursive", set("/a/b"), "/a", true, true},
		{"a grandchild, recursive", set("/a/b/c"), "/a", true, true},
		{"a sibling sharing the name's start", set("/a-b"), "/a", true, false},
		{"everything below the root", set("/a/b"), "/", true, true},
		{"a hidden key below the watched one", set("/a/_h"), "/a", true, false},
		{"a key below a hidden directory", set("/a/_h/x"), "/a", true, false},
		{"a hidden key watched itself", set("/a/_h"), "/a/_h", false, true},
		{"below a hidden watched directory", set("/_h/x"), "/_h", true, true},
		{"a parent's write", set("/a"), "/a/b", false, false},
		{"a directory's delete reaches below", delDir(v2store.ActionDelete, "/a"), "/a/b/c", false, true},
		{"a directory's expiry reaches below", delDir(v2store.ActionExpire, "/a"), "/a/b", false, true},
		{"a directory's compareAndDelete does not", delDir(v2store.ActionCompareAndDelete, "/a"), "/a/b", false, false},
		{"a sibling directory's delete", delDir(v2store.ActionDelete, "/a"), "/ab/c", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.c.Matches(c.key, c.recursive); got != c.want {
				t.Errorf("%s on %s (recursive %v): %v, want %v", c.c.Event.Action, c.key, c.recursive, got, c.want)
			}
		})
	}
}

func TestMetaOf(t *testing.T) {
	for _, c := range []struct {
		name string
		h    *pb.ResponseHeader
		want v2store.Meta
	}{
		{"no header", nil, v2store.Meta{}},
		{"the revision is both indexes", &pb.ResponseHeader{ClusterId: 0xabc, MemberId: 7, Revision: 42, RaftTerm: 3},
			v2store.Meta{EtcdIndex: 42, RaftIndex: 42, RaftTerm: 3, ClusterID: 0xabc}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := v2store.MetaOf(c.h); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// BenchmarkChanges: the v2 change of one v2 set, as the follower converts
// it (the key and the directory record, each with its previous value).
func BenchmarkChanges(b *testing.B) {
	kv := func(k, v string) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v), CreateRevision: 5, ModRevision: 20006, Version: 9000}
	}
	evs := []*mvccpb.Event{
		{Kv: kv("/v2/bench/k", "x"), PrevKv: kv("/v2/bench/k", "x")},
		{Kv: kv("/v2/bench/.", "set"), PrevKv: kv("/v2/bench/.", "set")},
	}
	l := v2store.NewLayout("/v2")
	b.ReportAllocs()
	for b.Loop() {
		if cs := l.Changes(evs); len(cs) != 1 || cs[0].Event.Action != v2store.ActionSet {
			b.Fatalf("%+v", cs)
		}
	}
}
