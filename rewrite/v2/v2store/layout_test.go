package v2store

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// testLayout is the layout the unit tests use, built in one place.
func testLayout(prefix string) Layout { return Layout{prefix: prefix} }

// grantScope grants reads and writes of the v3 keys under each prefix, as
// a v2 grant "/dir/*" does under <v2 prefix>/dir/.
type grantScope []string

func (g grantScope) CanRead(key, end []byte) bool {
	for _, pre := range g {
		if !bytes.HasPrefix(key, []byte(pre)) {
			continue
		}
		if end == nil || bytes.Compare(end, prefixEnd([]byte(pre))) <= 0 {
			return true
		}
	}
	return false
}

func (g grantScope) CanWrite(key []byte) bool { return g.CanRead(key, nil) }

// TestLayoutKeys: the v3 keys a v2 path maps to, with and without a prefix.
func TestLayoutKeys(t *testing.T) {
	for _, c := range []struct {
		prefix, p                  string
		key, marker, end, rec, dir string
	}{
		{prefix: "", p: "/a", key: "/a", marker: "/a/", end: "/a0", rec: "/.", dir: "/"},
		{prefix: "", p: "/a/b", key: "/a/b", marker: "/a/b/", end: "/a/b0", rec: "/a/.", dir: "/a"},
		{prefix: "/v2", p: "/a/b", key: "/v2/a/b", marker: "/v2/a/b/", end: "/v2/a/b0", rec: "/v2/a/.", dir: "/a"},
		{prefix: "/v2", p: "/", key: "/v2/", marker: "/v2/", end: "/v20", rec: "/v2/.", dir: "/"},
		{prefix: "/v2", p: "/_hidden/x", key: "/v2/_hidden/x", marker: "/v2/_hidden/x/", end: "/v2/_hidden/x0", rec: "/v2/_hidden/.", dir: "/_hidden"},
	} {
		t.Run(c.prefix+c.p, func(t *testing.T) {
			l := testLayout(c.prefix)
			start, end := l.Subtree(c.p)
			got := []string{string(l.Key(c.p)), string(l.Marker(c.p)), string(start), string(end), string(l.Record(ParentDir(c.p))), ParentDir(c.p)}
			want := []string{c.key, c.marker, c.marker, c.end, c.rec, c.dir}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("key, marker, subtree, record, parent = %q, want %q", got, want)
			}
		})
	}
	ks, ke := Keyspace("/v2")
	if string(ks) != "/v2/" || string(ke) != "/v20" {
		t.Errorf("Keyspace(/v2) = [%q, %q), want [/v2/, /v20)", ks, ke)
	}
}

// TestLayoutPath: Path inverts Key and Marker, and refuses the v3 keys no v2
// client can name.
func TestLayoutPath(t *testing.T) {
	x := NewLayout("/v2")
	for _, p := range []string{"/a", "/a/b", "/a b/c", "/_h", pathOfDepth(60)} {
		t.Run(p, func(t *testing.T) {
			if got, dir, ok := x.Path(x.Key(p)); got != p || dir || !ok {
				t.Errorf("Path(Key(%s)) = %q, %v, %v", p, got, dir, ok)
			}
			if got, dir, ok := x.Path(x.Marker(p)); got != p || !dir || !ok {
				t.Errorf("Path(Marker(%s)) = %q, %v, %v", p, got, dir, ok)
			}
		})
	}
	t.Run("root", func(t *testing.T) {
		if got, dir, ok := x.Path([]byte("/v2/")); got != "/" || !dir || !ok {
			t.Errorf("Path(/v2/) = %q, %v, %v; want the root directory", got, dir, ok)
		}
	})
	for _, c := range []struct{ why, key string }{
		{"the prefix itself", "/v2"},
		{"a sibling of the prefix", "/v2x/a"},
		{"outside the prefix", "/other/a"},
		{"no leading slash", "v2/a"},
		{"an empty component", "/v2//a"},
		{"an empty component in a marker", "/v2/a//"},
		{"the root marker twice", "/v2//"},
		{"a directory record", "/v2/a/."},
		{"the root's record", "/v2/."},
	} {
		t.Run(c.why, func(t *testing.T) {
			if p, _, ok := x.Path([]byte(c.key)); ok {
				t.Errorf("Path(%q) = %q, want no v2 node", c.key, p)
			}
		})
	}
}

// TestSubtreeLeavesOutSiblings: a directory's range holds its marker, its
// record and its children, not the names that merely start like it ("/a-b"
// and "/a0" sort around "/a/").
func TestSubtreeLeavesOutSiblings(t *testing.T) {
	start, end := testLayout("/v2").Subtree("/a")
	for _, c := range []struct {
		key  string
		want bool
	}{
		{"/v2/a/", true}, {"/v2/a/.", true}, {"/v2/a/b", true}, {"/v2/a/b/c/", true}, {"/v2/a/\xff", true},
		{"/v2/a", false}, {"/v2/a-b", false}, {"/v2/a0", false}, {"/v2/a.", false}, {"/v2/ab", false}, {"/v2/b/", false},
	} {
		t.Run(fmt.Sprintf("%q", c.key), func(t *testing.T) {
			in := bytes.Compare([]byte(c.key), start) >= 0 && bytes.Compare([]byte(c.key), end) < 0
			if in != c.want {
				t.Errorf("%q in subtree(/a) = %v, want %v", c.key, in, c.want)
			}
		})
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/a/", "/a0"},
		{"a\xff", "b"},
		{"a\xff\xff", "b"},
		{"\xff\xff", "\x00"}, // no end: every key from here on, as etcd reads "\x00"
		{"", "\x00"},
	} {
		t.Run(fmt.Sprintf("%q", c.in), func(t *testing.T) {
			if got := string(prefixEnd([]byte(c.in))); got != c.want {
				t.Errorf("prefixEnd(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestAncestors(t *testing.T) {
	for _, c := range []struct {
		p     string
		want  []string
		bytes int
	}{
		{"/", nil, 0},
		{"/a", nil, 0},
		{"/a/b", []string{"/a"}, 2},
		{"/a/b/c", []string{"/a", "/a/b"}, 6},
		{"/ab/cd/e", []string{"/ab", "/ab/cd"}, 9},
	} {
		t.Run(c.p, func(t *testing.T) {
			if got := Ancestors(c.p); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("Ancestors(%s) = %q, want %q", c.p, got, c.want)
			}
			if got := AncestorBytes(c.p); got != c.bytes {
				t.Errorf("AncestorBytes(%s) = %d, want %d", c.p, got, c.bytes)
			}
		})
	}
}

// pathOfDepth is a key with n parent directories.
func pathOfDepth(n int) string { return strings.Repeat("/d", n) + "/k" }

// TestDeepKeyLayout: a key with more than shallowAncestors parents takes the
// deep write path, whose transaction names no parent (deep.go).
func TestDeepKeyLayout(t *testing.T) {
	l := testLayout("/v2")
	for _, c := range []struct {
		parents int
		deep    bool
	}{{0, false}, {1, false}, {shallowAncestors, false}, {shallowAncestors + 1, true}, {200, true}} {
		t.Run(fmt.Sprintf("%d parents", c.parents), func(t *testing.T) {
			p := pathOfDepth(c.parents)
			if got := deep(p); got != c.deep {
				t.Errorf("deep = %v, want %v", got, c.deep)
			}
			wantCmp := c.parents
			if c.deep {
				wantCmp = 0
			}
			if got := len(l.parentsNoFile(p)); got != wantCmp {
				t.Errorf("%d compares on the parents, want %d", got, wantCmp)
			}
			if got := len(l.NoFileAbove(p)); got != c.parents {
				t.Errorf("noFileAbove has %d compares, want one per parent", got)
			}
		})
	}
}

func TestGroupOps(t *testing.T) {
	ops := func(n int) []*pb.RequestOp {
		out := make([]*pb.RequestOp, n)
		for i := range out {
			out[i] = opGet([]byte(fmt.Sprint(i)))
		}
		return out
	}
	for _, c := range []struct {
		n      int
		groups []int // sizes of the nested groups; nil: the ops as they are
	}{
		{0, nil}, {1, nil}, {opsPerGroup, nil},
		{opsPerGroup + 1, []int{opsPerGroup, 1}},
		{3*opsPerGroup + 5, []int{opsPerGroup, opsPerGroup, opsPerGroup, 5}},
	} {
		t.Run(fmt.Sprintf("%d ops", c.n), func(t *testing.T) {
			in := ops(c.n)
			got := groupOps(in)
			if c.groups == nil {
				if len(got) != len(in) {
					t.Fatalf("%d ops after grouping, want the %d as they are", len(got), c.n)
				}
				for i := range in {
					if got[i] != in[i] {
						t.Fatalf("op %d changed", i)
					}
				}
				return
			}
			var sizes []int
			var flat []*pb.RequestOp
			for _, g := range got {
				txn := g.GetRequestTxn()
				if txn == nil || len(txn.Compare) > 0 || len(txn.Failure) > 0 {
					t.Fatalf("group %v is no unconditional transaction", g)
				}
				sizes = append(sizes, len(txn.Success))
				flat = append(flat, txn.Success...)
			}
			if fmt.Sprint(sizes) != fmt.Sprint(c.groups) {
				t.Errorf("groups of %v, want %v", sizes, c.groups)
			}
			for i := range in {
				if flat[i] != in[i] {
					t.Fatalf("op %d moved", i)
				}
			}
		})
	}
}

// inRanges reports whether key falls in any compare's range (a compare of a
// single key covers that key).
func inRanges(cmp []*pb.Compare, key string) bool {
	k := []byte(key)
	for _, c := range cmp {
		if c.RangeEnd == nil && bytes.Equal(c.Key, k) {
			return true
		}
		if c.RangeEnd != nil && bytes.Compare(k, c.Key) >= 0 && bytes.Compare(k, c.RangeEnd) < 0 {
			return true
		}
	}
	return false
}

// TestEmptyDirCompares: a directory is empty when nothing but its marker and
// its record lie below it; the compares look at everything else.
func TestEmptyDirCompares(t *testing.T) {
	cmp := testLayout("/v2").emptyDir("/a")
	for _, c := range []struct {
		key  string
		want bool
	}{
		{"/v2/a/", false}, {"/v2/a/.", false}, // the directory's own keys
		{"/v2/a/-", true}, {"/v2/a/.x", true}, {"/v2/a/0", true}, {"/v2/a/b", true}, {"/v2/a/b/", true}, {"/v2/a/\xff", true},
		{"/v2/a/\x00", true}, {"/v2/a/.\x00", true}, // the keys right after each excluded one
		{"/v2/a", false}, {"/v2/a0", false}, {"/v2/b/x", false},
	} {
		t.Run(fmt.Sprintf("%q", c.key), func(t *testing.T) {
			if got := inRanges(cmp, c.key); got != c.want {
				t.Errorf("%q checked by emptyDir(/a) = %v, want %v", c.key, got, c.want)
			}
		})
	}
}

// TestMarkerOps: a write makes each missing parent's marker in a nested
// transaction that creates it only when absent; under a scope it leaves out
// the markers the caller may not touch (those directories exist by their
// children).
func TestMarkerOps(t *testing.T) {
	for _, c := range []struct {
		name  string
		scope Scope
		p     string
		want  []string
	}{
		{"root child", nil, "/a", nil},
		{"nested", nil, "/a/b/c", []string{"/v2/a/", "/v2/a/b/"}},
		{"grant below /alice", grantScope{"/v2/alice/"}, "/alice/b/c", []string{"/v2/alice/", "/v2/alice/b/"}},
		{"grant below /alice/b", grantScope{"/v2/alice/b/"}, "/alice/b/c/d", []string{"/v2/alice/b/", "/v2/alice/b/c/"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := testLayout("/v2")
			l.scope = c.scope
			var got []string
			for _, op := range l.MarkerOps(c.p) {
				txn := op.GetRequestTxn()
				if txn == nil || len(txn.Compare) != 1 || len(txn.Success) != 1 || len(txn.Failure) != 0 {
					t.Fatalf("marker op %v is not create-if-absent", op)
				}
				put := txn.Success[0].GetRequestPut()
				cmp := txn.Compare[0]
				if put == nil || !bytes.Equal(cmp.Key, put.Key) || cmp.Target != pb.Compare_VERSION || cmp.GetVersion() != 0 || len(put.Value) != 0 {
					t.Fatalf("marker op %v is not create-if-absent", op)
				}
				got = append(got, string(put.Key))
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("markers %q, want %q", got, c.want)
			}
			if n := len(l.markersExist(Ancestors(c.p))); n != len(c.want) {
				t.Errorf("%d marker compares for the fast try, want %d (one per marker the slow try makes)", n, len(c.want))
			}
		})
	}
}

// TestActionOp: the record a write leaves for watchers lies in its parent
// directory; a caller who may not write it sends an op that does nothing in
// its place.
func TestActionOp(t *testing.T) {
	l := testLayout("/v2")
	put := l.ActionOp("/a/b", ActionCompareAndSwap).GetRequestPut()
	if put == nil || string(put.Key) != "/v2/a/." || string(put.Value) != ActionCompareAndSwap || put.Lease != 0 {
		t.Fatalf("actionOp(/a/b) = %v, want a put of /v2/a/. = %s", put, ActionCompareAndSwap)
	}
	l.scope = grantScope{"/v2/alice/"}
	if txn := l.ActionOp("/alice", ActionSet).GetRequestTxn(); txn == nil || len(txn.Compare)+len(txn.Success)+len(txn.Failure) != 0 {
		t.Errorf("actionOp(/alice) outside the grant = %v, want an empty transaction", l.ActionOp("/alice", ActionSet))
	}
	if put := l.ActionOp("/alice/x", ActionSet).GetRequestPut(); put == nil || string(put.Key) != "/v2/alice/." {
		t.Errorf("actionOp(/alice/x) inside the grant = %v, want a put of /v2/alice/.", put)
	}
	if del := l.dropRecord("/alice/x").GetRequestDeleteRange(); del == nil || string(del.Key) != "/v2/alice/x/." {
		t.Errorf("dropRecord(/alice/x) = %v", del)
	}
	if txn := l.dropRecord("/bob").GetRequestTxn(); txn == nil {
		t.Errorf("dropRecord(/bob) outside the grant = %v, want an empty transaction", l.dropRecord("/bob"))
	}
}

// TestSubtreeKeysDoNotAlias: Subtree's two keys share one allocation; an
// append to either must not change the other, and both equal the marker
// and its prefix end.
func TestSubtreeKeysDoNotAlias(t *testing.T) {
	for _, prefix := range []string{"", "/v2"} {
		for _, p := range []string{"/", "/a", "/a/b", "/\xff"} {
			l := testLayout(prefix)
			start, end := l.Subtree(p)
			if !bytes.Equal(start, l.Marker(p)) || !bytes.Equal(end, prefixEnd(l.Marker(p))) {
				t.Fatalf("Subtree(%q) under %q = [%q, %q), want [%q, %q)", p, prefix, start, end, l.Marker(p), prefixEnd(l.Marker(p)))
			}
			wantEnd := string(end)
			_ = append(start, 0, 0, 0) // as CanRead and emptyDir extend keys
			if string(end) != wantEnd {
				t.Errorf("appending to start changed end: %q, want %q", end, wantEnd)
			}
			wantStart := string(start)
			_ = append(end, 1)
			if string(start) != wantStart {
				t.Errorf("appending to end changed start: %q", start)
			}
		}
	}
}

// TestAncestorCount: the count deep uses equals Ancestors' length.
func TestAncestorCount(t *testing.T) {
	for _, p := range []string{"", "/", "/a", "/a/", "/a/b", "/a/b/c", "//", "/a//b", pathOfDepth(shallowAncestors + 3)} {
		if got, want := ancestorCount(p), len(Ancestors(p)); got != want {
			t.Errorf("ancestorCount(%q) = %d, want %d", p, got, want)
		}
	}
}

// TestWriteCompares: a write's compares are its parents' (as NoFileAbove
// lists them, in scope) then its own, with room left for the fast path's
// marker compares, which must not show through the returned list.
func TestWriteCompares(t *testing.T) {
	l := testLayout("/v2")
	l.scope = grantScope{"/v2/a/"}
	own := l.NotDir("/a/b/c")
	cmp := l.parentsNoFile("/a/b/c", own)
	want := append(l.NoFileAbove("/a/b/c"), own)
	if fmt.Sprint(cmp) != fmt.Sprint(want) {
		t.Fatalf("parentsNoFile = %v, want %v", cmp, want)
	}
	fast := l.parentMarkersExist(cmp, "/a/b/c")
	if wantFast := append(append([]*pb.Compare(nil), want...), l.markersExist(Ancestors("/a/b/c"))...); fmt.Sprint(fast) != fmt.Sprint(wantFast) {
		t.Errorf("fast compares = %v, want %v", fast, wantFast)
	}
	if len(cmp) != len(want) || cmp[len(cmp)-1] != own {
		t.Errorf("the write's own compares changed: %v", cmp)
	}
}

// TestActionValues: every action a record holds is sent as its own bytes.
func TestActionValues(t *testing.T) {
	for _, a := range []string{ActionSet, ActionCreate, ActionUpdate, ActionCompareAndSwap, ActionDelete,
		ActionCompareAndDelete, ActionRefresh, ActionExpireSubtree, "other"} {
		if got := string(testLayout("").ActionOp("/a/b", a).GetRequestPut().Value); got != a {
			t.Errorf("record value for %q = %q", a, got)
		}
		if got := actionOf([]byte(a)); got != a {
			t.Errorf("actionOf(%q) = %q", a, got)
		}
	}
}

// TestNodeOfKeyValue: node makes the node decode and the key-value name
// (the path and value share one string, the node and the value's pointer
// one object), for files, markers, the root and keys outside the prefix.
func TestNodeOfKeyValue(t *testing.T) {
	for _, prefix := range []string{"", "/v2"} {
		l := testLayout(prefix)
		for _, c := range []struct{ key, value string }{
			{prefix + "/a", "x"}, {prefix + "/a/b", ""}, {prefix + "/a/", ""}, {prefix + "/", ""},
			{prefix + "/a/b/", "ignored"}, {prefix, "v"}, {"/other/k", "v"}, {prefix + "/ü", "\x00\xff"},
		} {
			kv := &mvccpb.KeyValue{Key: []byte(c.key), Value: []byte(c.value), ModRevision: 7, CreateRevision: 3}
			p, dir := l.decode(kv.Key)
			want := &Node{Key: p, Dir: dir, ModifiedIndex: 7, CreatedIndex: 3}
			if !dir {
				v := c.value
				want.Value = &v
			}
			got := l.node(kv)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("node(%q) under %q = %+v, want %+v", c.key, prefix, got, want)
			}
			if len(kv.Key) == 0 {
				continue
			}
			kv.Key[len(kv.Key)-1]++ // the node keeps no reference to the key-value
			if got.Key != want.Key {
				t.Errorf("node(%q) changed with its key-value: %q", c.key, got.Key)
			}
		}
	}
}
