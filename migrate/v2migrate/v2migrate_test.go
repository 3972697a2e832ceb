package v2migrate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func str(s string) *string { return &s }

func file(k, v string) *v2store.Node { return &v2store.Node{Key: k, Value: str(v)} }

func dir(k string, children ...*v2store.Node) *v2store.Node {
	return &v2store.Node{Key: k, Dir: true, Nodes: children}
}

func TestFlatten(t *testing.T) {
	read := time.Unix(1000, 0)
	ttlFile := file("/t", "x")
	ttlFile.TTL = 30
	ttlDir := dir("/td", file("/td/c", "c"))
	ttlDir.TTL = 10
	cases := []struct {
		name string
		root *v2store.Node
		at   time.Time
		want []Entry
	}{
		{"empty root", dir("/"), read, nil},
		{"nested, parents first", dir("/", dir("/b", file("/b/y", "2"), dir("/b/e")), file("/a", "1")), read,
			[]Entry{{Path: "/a", Value: "1"}, {Path: "/b", Dir: true}, {Path: "/b/e", Dir: true}, {Path: "/b/y", Value: "2"}}},
		{"a file root", file("/only", "v"), read, []Entry{{Path: "/only", Value: "v"}}},
		{"in-order names keep their digits", dir("/", dir("/q", file("/q/00000000000000000007", "j"))), read,
			[]Entry{{Path: "/q", Dir: true}, {Path: "/q/00000000000000000007", Value: "j"}}},
		{"TTLs less the time since the read", dir("/", ttlFile, ttlDir), read.Add(2500 * time.Millisecond),
			[]Entry{{Path: "/t", Value: "x", TTL: 28}, {Path: "/td", Dir: true, TTL: 8}, {Path: "/td/c", Value: "c"}}},
		{"an expired TTL stays at least 1s", dir("/", ttlFile), read.Add(time.Minute), []Entry{{Path: "/t", Value: "x", TTL: 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Flatten(&Tree{Root: c.root, ReadAt: read}, c.at)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestHiddenBelow(t *testing.T) {
	cases := []struct {
		root, p string
		want    bool
	}{
		{"/", "/a/b", false},
		{"/", "/_a", true},
		{"/", "/a/_b/c", true},
		{"/", "/_etcdshim_action", true},
		{"/_h", "/_h", false},
		{"/_h", "/_h/x", false},
		{"/_h", "/_h/x/_y", true},
		{"/a", "/a/b_c", false},
	}
	for _, c := range cases {
		t.Run(c.root+" "+c.p, func(t *testing.T) {
			if got := hiddenBelow(c.root, c.p); got != c.want {
				t.Fatalf("hiddenBelow(%q, %q) = %v", c.root, c.p, got)
			}
		})
	}
}

func TestLayoutPath(t *testing.T) {
	cases := []struct {
		prefix, key string
		p           string
		dir, ok     bool
	}{
		{"", "/a/b", "/a/b", false, true},
		{"", "/a/b/", "/a/b", true, true},
		{"/v2", "/v2/a", "/a", false, true},
		{"/v2", "/v2x/a", "", false, false},
		{"", "a", "", false, false},
		{"", "/a//b", "", false, false},
	}
	for _, c := range cases {
		t.Run(c.prefix+c.key, func(t *testing.T) {
			p, d, ok := v2store.NewLayout(c.prefix).Path([]byte(c.key))
			if p != c.p || d != c.dir || ok != c.ok {
				t.Fatalf("got %q %v %v", p, d, ok)
			}
		})
	}
}

func view(root string, files map[string]string, markers ...string) *DestView {
	v := &DestView{Root: root, Files: map[string]destKV{}, Markers: map[string]destKV{}, Implied: map[string]bool{}, TTLs: map[int64]int64{}}
	add := func(p string) {
		for _, a := range v2store.Ancestors(p) {
			if within(root, a) {
				v.Implied[a] = true
			}
		}
	}
	for p, val := range files {
		v.Files[p] = destKV{Key: []byte(p), Value: []byte(val)}
		add(p)
	}
	for _, m := range markers {
		v.Markers[m] = destKV{Key: []byte(m + "/")}
		add(m)
	}
	return v
}

func TestPlan(t *testing.T) {
	src := []Entry{{Path: "/a", Dir: true}, {Path: "/a/x", Value: "1"}, {Path: "/a/y", Value: "2"}, {Path: "/f", Value: "v"}}
	leased := view("/", map[string]string{"/k": "v"})
	leased.Files["/k"] = destKV{Value: []byte("v"), Lease: 7}
	leased.TTLs[7] = 58
	cases := []struct {
		name      string
		src       []Entry
		dest      *DestView
		writes    []string
		skipped   int
		conflicts []Conflict
	}{
		{"empty destination", src, view("/", nil), []string{"/a", "/a/x", "/a/y", "/f"}, 0, nil},
		{"all equal", src, view("/", map[string]string{"/a/x": "1", "/a/y": "2", "/f": "v"}, "/a"), nil, 4, nil},
		{"a missing marker and a changed value", src, view("/", map[string]string{"/a/x": "1", "/a/y": "old", "/f": "v"}),
			[]string{"/a", "/a/y"}, 2, nil},
		{"a file where a directory goes blocks its subtree", src, view("/", map[string]string{"/a": "file"}),
			[]string{"/f"}, 0, []Conflict{{Path: "/a", Reason: "the destination has a file where the source has a directory", Blocked: 2}}},
		{"a directory where a file goes", src, view("/", map[string]string{"/f/child": "c"}),
			[]string{"/a", "/a/x", "/a/y"}, 0, []Conflict{{Path: "/f", Reason: "the destination has a directory where the source has a file"}}},
		{"TTL within tolerance is equal", []Entry{{Path: "/k", Value: "v", TTL: 60}}, leased, nil, 1, nil},
		{"TTL on one side only", []Entry{{Path: "/k", Value: "v"}}, leased, []string{"/k"}, 0, nil},
		{"TTL too far apart", []Entry{{Path: "/k", Value: "v", TTL: 300}}, leased, []string{"/k"}, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := plan(c.src, c.dest, 5*time.Second)
			var got []string
			for _, e := range p.writes {
				got = append(got, e.Path)
			}
			if !reflect.DeepEqual(got, c.writes) || p.skipped != c.skipped || !reflect.DeepEqual(p.conflicts, c.conflicts) {
				t.Fatalf("writes %v skipped %d conflicts %+v", got, p.skipped, p.conflicts)
			}
		})
	}
}

func TestPlanAncestors(t *testing.T) {
	p := plan([]Entry{{Path: "/a/b/c", Dir: true}}, view("/a/b/c", nil), time.Second)
	if !reflect.DeepEqual(p.ancestors, []string{"/a", "/a/b"}) {
		t.Fatalf("ancestors %v", p.ancestors)
	}
}

func TestPruneList(t *testing.T) {
	src := []Entry{{Path: "/a", Dir: true}, {Path: "/a/x", Value: "1"}, {Path: "/f", Value: "v"}}
	dest := view("/", map[string]string{"/a/x": "1", "/gone": "g", "/a": "file now dir"}, "/a", "/olddir", "/f")
	var got []string
	for _, d := range pruneList(src, dest) {
		got = append(got, string(d.Key))
	}
	want := []string{"/a", "/f/", "/gone", "/olddir/"}
	if strings.Join(sorted(got), ",") != strings.Join(want, ",") {
		t.Fatalf("prune %v, want %v", got, want)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestBatches(t *testing.T) {
	var es []Entry
	for i := 0; i < 250; i++ {
		es = append(es, Entry{Path: "/k", Value: "v"})
	}
	es = append(es, Entry{Path: "/big", Value: strings.Repeat("x", 600<<10)}, Entry{Path: "/after", Value: "v"})
	cases := []struct {
		name    string
		n, size int
		want    []int
	}{
		{"by count", 100, 1 << 30, []int{100, 100, 52}},
		{"by size, a big value alone", 100, 512 << 10, []int{100, 100, 50, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []int
			for _, b := range batches(es, c.n, c.size) {
				got = append(got, len(b))
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("batch sizes %v, want %v", got, c.want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	cases := []struct {
		name     string
		src, dst []Entry
		want     []string
	}{
		{"equal", []Entry{{Path: "/a", Dir: true}, {Path: "/a/b", Value: "1", TTL: 30}}, []Entry{{Path: "/a", Dir: true}, {Path: "/a/b", Value: "1", TTL: 27}}, nil},
		{"missing and extra", []Entry{{Path: "/m", Value: "1"}}, []Entry{{Path: "/x", Dir: true}},
			[]string{`not on the destination: /m (file "1")`, `only on the destination: /x (dir)`}},
		{"value", []Entry{{Path: "/v", Value: "a"}}, []Entry{{Path: "/v", Value: "b"}}, []string{`value differs: /v (source "a", destination "b")`}},
		{"long values are cut", []Entry{{Path: "/v", Value: strings.Repeat("a", 100)}}, []Entry{{Path: "/v", Value: "b"}},
			[]string{`value differs: /v (source "` + strings.Repeat("a", 60) + `"… (100 bytes), destination "b")`}},
		{"dir/file", []Entry{{Path: "/d", Dir: true}}, []Entry{{Path: "/d", Value: ""}}, []string{`dir/file mismatch: /d (source dir, destination file)`}},
		{"ttl", []Entry{{Path: "/t", Value: "", TTL: 60}}, []Entry{{Path: "/t", Value: ""}}, []string{`ttl differs: /t (source 60s, destination none)`}},
		{"ttl too far", []Entry{{Path: "/t", Dir: true, TTL: 60}}, []Entry{{Path: "/t", Dir: true, TTL: 40}}, []string{`ttl differs: /t (source 60s, destination 40s)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, d := range Diff(c.src, c.dst, 5*time.Second) {
				got = append(got, d.String())
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %q\nwant %q", got, c.want)
			}
		})
	}
}

// fakeSource serves a v2 tree and, on wait requests, a scripted sequence
// of answers (an event, or a v2 error).
type fakeSource struct {
	mu    sync.Mutex
	tree  *v2store.Node
	index uint64
	waits []any // *v2store.Event or *v2store.Error
	calls []string
}

func (f *fakeSource) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.URL.RequestURI())
	if !strings.HasPrefix(r.URL.Path, "/v2/keys") {
		http.NotFound(w, r)
		return
	}
	if r.URL.Query().Get("wait") != "true" {
		w.Header().Set("X-Etcd-Index", uitoa(f.index))
		_ = json.NewEncoder(w).Encode(&v2store.Event{Action: "get", Node: f.tree})
		return
	}
	if len(f.waits) == 0 {
		f.mu.Unlock()
		<-r.Context().Done()
		f.mu.Lock()
		return
	}
	next := f.waits[0]
	f.waits = f.waits[1:]
	if e, ok := next.(*v2store.Error); ok {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(e)
		return
	}
	_ = json.NewEncoder(w).Encode(next)
}

func uitoa(u uint64) string {
	b, _ := json.Marshal(u)
	return string(b)
}

// TestImportFollowEmbedded imports into a real v3 store and reads the
// result back through the shim's own v2 store, then follows changes and a
// 401 re-read that prunes.
func TestImportFollowEmbedded(t *testing.T) {
	_, cc := etcdtest.Start(t)
	ttl := file("/app/ttl", "t")
	ttl.TTL = 100
	fs := &fakeSource{index: 40, tree: dir("/",
		dir("/app", dir("/app/db", file("/app/db/host", "db1")), dir("/app/empty"), ttl),
		dir("/q", file("/q/00000000000000000012", "job")),
		file("/top", "v"),
	)}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := New(&Source{URL: srv.URL}, cc, "/v2", Options{})

	sum, err := m.Import(ctx)
	if err != nil || sum.Keys != 4 || sum.Dirs != 4 || sum.WithTTL != 1 || sum.Indexes["/"] != 40 {
		t.Fatalf("import: %v %+v", err, sum)
	}
	st := v2store.NewV3(cc, "/v2")
	ev, _, err := st.Get(ctx, "/", v2store.GetOptions{Recursive: true, Sorted: true, Quorum: true})
	if err != nil {
		t.Fatal(err)
	}
	got := Flatten(&Tree{Root: ev.Node, ReadAt: time.Now()}, time.Now())
	want := Flatten(&Tree{Root: fs.tree, ReadAt: time.Now()}, time.Now())
	if d := Diff(want, got, 2*time.Second); len(d) > 0 {
		t.Fatalf("read back through v2store: %v", d)
	}
	if sum, err := m.Import(ctx); err != nil || sum.Skipped != 8 || sum.Keys+sum.Dirs != 0 {
		t.Fatalf("second import: %v %+v", err, sum)
	}

	// Follow: a set, a delete, then the source's history is gone (401) and
	// the tree it answers no longer has /top.
	fs.mu.Lock()
	fs.waits = []any{
		&v2store.Event{Action: "set", Node: &v2store.Node{Key: "/app/new/deep", Value: str("n"), ModifiedIndex: 41}},
		&v2store.Event{Action: "delete", Node: &v2store.Node{Key: "/app/db", Dir: true, ModifiedIndex: 42}},
		v2store.NewError(v2store.EcodeEventIndexCleared, "the requested history has been cleared [50/43]", 1050),
	}
	// What the source holds after both changes, without /top.
	fs.tree = dir("/", dir("/app", dir("/app/empty"), dir("/app/new", file("/app/new/deep", "n")), ttl),
		dir("/q", file("/q/00000000000000000012", "job")))
	fs.index = 1050
	fs.mu.Unlock()
	fctx, fcancel := context.WithCancel(ctx)
	done := make(chan FollowStats)
	go func() {
		s, _ := m.Follow(fctx, sum.Indexes)
		done <- s
	}()
	waitfor.True(t, 10*time.Second, "the follower to wait from index 1051", func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return strings.Contains(fs.calls[len(fs.calls)-1], "waitIndex=1051")
	})
	fcancel()
	stats := waitfor.Recv(t, done, time.Minute, "Follow to return once cancelled")
	if stats.Events != 2 || stats.Resyncs != 1 {
		t.Fatalf("follow: %+v, calls %v", stats, fs.calls)
	}
	r, err := m.kv.Range(ctx, &pb.RangeRequest{Key: []byte("/v2/"), RangeEnd: []byte("/v20"), KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range r.Kvs {
		keys = append(keys, string(kv.Key))
	}
	// "<dir>/." are the directory records of the followed writes.
	wantKeys := []string{"/v2/app/", "/v2/app/.", "/v2/app/empty/", "/v2/app/new/", "/v2/app/new/.", "/v2/app/new/deep", "/v2/app/ttl", "/v2/q/", "/v2/q/00000000000000000012"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Fatalf("destination keys after follow:\n%q\nwant\n%q", keys, wantKeys)
	}
}

func TestSourceErrors(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"no v2", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, ErrNoV2.Error()},
		{"missing prefix", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(v2store.NewError(100, "/nope", 3))
		}, "/nope not found on the source"},
		{"auth", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }, "give --from-user"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			_, err := (&Source{URL: srv.URL}).ReadTree(context.Background(), "/nope")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}
