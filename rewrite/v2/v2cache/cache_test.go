package v2cache_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2cache"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// TestCache runs the cache tests on one embedded etcd; each subtest has a
// v2 prefix, and so a cache, of its own.
func TestCache(t *testing.T) {
	_, cc := etcdtest.Start(t)
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *grpc.ClientConn)
	}{
		{"answers as the member", testSameAnswers},
		{"reads its own writes", testOwnWrites},
		{"credentials go to the member", testCredentials},
		{"too big", testTooBig},
		{"member too old", testOldMember},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, cc) })
	}
	// Last, on a member of its own: it turns auth on.
	t.Run("auth turned on", testAuthOn)
}

// env is a cached and an uncached store over one prefix, the cache fed by a
// follower of its own.
type env struct {
	prefix         string
	kv             pb.KVClient
	cached, direct *v2store.V3Store
	reg            *prometheus.Registry
	logs           *observer.ObservedLogs // the cache's, from info up
}

func newEnv(t *testing.T, cc *grpc.ClientConn, maxBytes int64) *env {
	t.Helper()
	prefix := "/" + t.Name()
	core, logs := observer.New(zap.InfoLevel)
	e := &env{prefix: prefix, kv: pb.NewKVClient(cc), reg: prometheus.NewRegistry(),
		direct: v2store.NewV3(cc, prefix), logs: logs}
	f := v2follow.New(v2follow.Options{Prefix: prefix}, etcdtest.Upstream{Conn: cc})
	c := v2cache.New(v2cache.Options{Prefix: prefix, MaxBytes: maxBytes, Registerer: e.reg, Logger: zap.New(core)}, cc, f)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = f.Run(ctx) }()
	go func() { defer wg.Done(); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	e.cached = v2store.NewV3(cc, prefix).WithReadCache(c)
	return e
}

// metric is one of the cache's metrics (a counter child by its result label).
func (e *env) metric(t *testing.T, name, result string) float64 {
	return etcdtest.Metric(t, e.reg, name, result)
}

func (e *env) hits(t *testing.T) float64 {
	return e.metric(t, "etcdshim_v2_read_cache_reads_total", "hit")
}

// serving makes the first read (which starts the cache) and waits until
// the cache answers.
func (e *env) serving(t *testing.T) {
	t.Helper()
	_, _, _ = e.cached.Get(context.Background(), "/", v2store.GetOptions{})
	waitfor.True(t, hangGuard, "the cache to serve", func() bool { return e.metric(t, "etcdshim_v2_read_cache_serving", "") == 1 })
}

// hangGuard bounds every wait of these tests.
const hangGuard = 20 * time.Second

// result is what a Get answered, with what may differ between two reads
// made at different moments taken out: the expiration time (the TTL in
// whole seconds stays).
type result struct {
	Event *v2store.Event
	Meta  v2store.Meta
	Err   string
}

func get(ctx context.Context, s *v2store.V3Store, key string, o v2store.GetOptions) result {
	ev, m, err := s.Get(ctx, key, o)
	r := result{Event: ev, Meta: m}
	if err != nil {
		r.Err = err.Error()
		var e *v2store.Error
		if errors.As(err, &e) {
			r.Err = fmt.Sprintf("%d %s %s %d", e.Code, e.Message, e.Cause, e.Index)
		}
	}
	if ev != nil {
		clearExpiration(ev.Node)
	}
	return r
}

func clearExpiration(n *v2store.Node) {
	if n == nil {
		return
	}
	n.Expiration = nil
	for _, c := range n.Nodes {
		clearExpiration(c)
	}
}

// testSameAnswers makes random v2 and v3 writes, inside and outside the v2
// keyspace, and after each one reads a set of paths from the cache and from
// the member: every answer must be identical, and every cached read must
// have come from the cache.
func testSameAnswers(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, 1<<30)
	ctx := context.Background()
	e.serving(t)
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/ab", "/a-b", "/d", "/d/e", "/_h", "/q", "/missing/x"}
	ttl := time.Duration(60) * time.Second
	writes := []func(){
		func() {
			_, _, _ = e.direct.Put(ctx, pick(rng, paths), v2store.SetOptions{Value: "v" + fmt.Sprint(rng.IntN(9))})
		},
		func() { _, _, _ = e.direct.Put(ctx, pick(rng, paths), v2store.SetOptions{Dir: true}) },
		func() { _, _, _ = e.direct.Put(ctx, pick(rng, paths), v2store.SetOptions{Value: "ttl", TTL: &ttl}) },
		func() {
			_, _, _ = e.direct.Delete(ctx, pick(rng, paths), v2store.DeleteOptions{Recursive: true, Dir: true})
		},
		func() { _, _, _ = e.direct.CreateInOrder(ctx, "/q", v2store.SetOptions{Value: "job"}) },
		func() { // a v3 client's write in the v2 keyspace
			_, _ = e.kv.Put(ctx, &pb.PutRequest{Key: []byte(e.prefix + pick(rng, paths)), Value: []byte("v3")})
		},
		func() {
			_, _ = e.kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(e.prefix + pick(rng, paths))})
		},
		func() { // outside it: moves the revision only
			_, _ = e.kv.Put(ctx, &pb.PutRequest{Key: []byte("outside" + e.prefix), Value: []byte("x")})
		},
	}
	before := e.hits(t)
	reads := 0
	for i := range 150 {
		writes[rng.IntN(len(writes))]()
		for _, p := range paths {
			for _, o := range []v2store.GetOptions{{}, {Recursive: true, Sorted: true}} {
				want := get(ctx, e.direct, p, o)
				got := get(ctx, e.cached, p, o)
				reads++
				if got.Event != nil && want.Event != nil {
					alignTTL(got.Event.Node, want.Event.Node)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d, GET %s %+v:\ncache  %s\nmember %s", i, p, o, dump(got), dump(want))
				}
			}
		}
	}
	if hits := e.hits(t) - before; hits != float64(reads) {
		t.Fatalf("%v of %d reads came from the cache; the member answered %v not ready, %v after a failed barrier, %v for credentials",
			hits, reads, e.metric(t, "etcdshim_v2_read_cache_reads_total", "not_ready"),
			e.metric(t, "etcdshim_v2_read_cache_reads_total", "barrier_failed"), e.metric(t, "etcdshim_v2_read_cache_reads_total", "credentials"))
	}
}

// alignTTL takes got's TTLs as want's where they are one second lower: the
// cache is read after the member, and a second's boundary may fall between
// the two reads on a busy machine. Any other difference stays.
func alignTTL(got, want *v2store.Node) {
	if got == nil || want == nil {
		return
	}
	if got.TTL == want.TTL-1 {
		got.TTL = want.TTL
	}
	if len(got.Nodes) == len(want.Nodes) {
		for i := range got.Nodes {
			alignTTL(got.Nodes[i], want.Nodes[i])
		}
	}
}

func pick(rng *rand.Rand, paths []string) string { return paths[rng.IntN(len(paths))] }

func dump(r result) string {
	if r.Event == nil {
		return fmt.Sprintf("meta %+v err %s", r.Meta, r.Err)
	}
	return fmt.Sprintf("meta %+v node %s", r.Meta, nodeString(r.Event.Node))
}

func nodeString(n *v2store.Node) string {
	s := fmt.Sprintf("{%s dir=%v mod=%d crea=%d ttl=%d", n.Key, n.Dir, n.ModifiedIndex, n.CreatedIndex, n.TTL)
	if n.Value != nil {
		s += " value=" + *n.Value
	}
	for _, c := range n.Nodes {
		s += " " + nodeString(c)
	}
	return s + "}"
}

// testOwnWrites writes straight to the member (as a v3 client through the
// shim's tunnel does, unseen by the cache) and at once reads through the
// cache: the barrier must make every read see the write.
func testOwnWrites(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, 1<<30)
	ctx := context.Background()
	e.serving(t)
	before := e.hits(t)
	const n = 300
	for i := range n {
		v := fmt.Sprint(i)
		if i%2 == 0 {
			if _, err := e.kv.Put(ctx, &pb.PutRequest{Key: []byte(e.prefix + "/k"), Value: []byte(v)}); err != nil {
				t.Fatal(err)
			}
		} else if _, _, err := e.direct.Put(ctx, "/k", v2store.SetOptions{Value: v}); err != nil {
			t.Fatal(err)
		}
		ev, _, err := e.cached.Get(ctx, "/k", v2store.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *ev.Node.Value != v {
			t.Fatalf("write %d: read %q after writing %q", i, *ev.Node.Value, v)
		}
	}
	if hits := e.hits(t) - before; hits != n {
		t.Fatalf("%v of %d reads came from the cache", hits, n)
	}
}

// testCredentials: a read carrying a v3 token depends on who asks, so the
// member answers it.
func testCredentials(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, 1<<30)
	e.serving(t)
	before, barriers := e.hits(t), e.metric(t, "etcdshim_v2_read_cache_barriers_total", "")
	ctx := metadata.AppendToOutgoingContext(context.Background(), rpctypes.TokenFieldNameGRPC, "some-token")
	// Auth is off, so the member ignores the token and answers.
	if _, _, err := e.cached.Get(ctx, "/", v2store.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if e.hits(t) != before || e.metric(t, "etcdshim_v2_read_cache_barriers_total", "") != barriers {
		t.Fatal("a read with a token went to the cache")
	}
	if got := e.metric(t, "etcdshim_v2_read_cache_reads_total", "credentials"); got != 1 {
		t.Fatalf("credentials reads = %v, want 1", got)
	}
}

// testTooBig: a keyspace over the bound turns the cache off; reads still
// answer, from the member.
func testTooBig(t *testing.T, cc *grpc.ClientConn) {
	e := newEnv(t, cc, 2000)
	ctx := context.Background()
	for i := range 20 {
		if _, _, err := e.direct.Put(ctx, fmt.Sprintf("/k%d", i), v2store.SetOptions{Value: "0123456789"}); err != nil {
			t.Fatal(err)
		}
	}
	// The first read starts the cache; its load finds the keyspace too big.
	if got, want := get(ctx, e.cached, "/", v2store.GetOptions{}), get(ctx, e.direct, "/", v2store.GetOptions{}); !reflect.DeepEqual(got, want) {
		t.Fatalf("cache %s\nmember %s", dump(got), dump(want))
	}
	waitfor.True(t, hangGuard, "the cache to turn itself off", func() bool { return e.logs.FilterMessage("v2 read cache off: v2 GETs go to the member").Len() > 0 })
	for range 5 {
		if got, want := get(ctx, e.cached, "/", v2store.GetOptions{}), get(ctx, e.direct, "/", v2store.GetOptions{}); !reflect.DeepEqual(got, want) {
			t.Fatalf("cache %s\nmember %s", dump(got), dump(want))
		}
	}
	if e.hits(t) != 0 || e.metric(t, "etcdshim_v2_read_cache_serving", "") != 0 {
		t.Fatal("the cache served a keyspace larger than its bound")
	}
}

// testAuthOn: once auth is on, an anonymous read must get what the member
// gives an anonymous read (an error), although the cache's watch, opened
// while auth was off, goes on delivering events.
func testAuthOn(t *testing.T) {
	_, cc := etcdtest.Start(t)
	e := newEnv(t, cc, 1<<30)
	ctx := context.Background()
	if _, _, err := e.direct.Put(ctx, "/secret", v2store.SetOptions{Value: "s"}); err != nil {
		t.Fatal(err)
	}
	e.serving(t)
	if r := get(ctx, e.cached, "/secret", v2store.GetOptions{}); r.Err != "" || e.hits(t) == 0 {
		t.Fatalf("before auth: %s, %v hits", dump(r), e.hits(t))
	}
	auth := pb.NewAuthClient(cc)
	for _, step := range []func() error{
		func() error {
			_, err := auth.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "root", Password: "pw"})
			return err
		},
		func() error { _, err := auth.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: "root"}); return err },
		func() error {
			_, err := auth.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"})
			return err
		},
		func() error { _, err := auth.AuthEnable(ctx, &pb.AuthEnableRequest{}); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	hits := e.hits(t)
	for range 10 {
		got, want := get(ctx, e.cached, "/secret", v2store.GetOptions{}), get(ctx, e.direct, "/secret", v2store.GetOptions{})
		if got.Err == "" || got.Err != want.Err {
			t.Fatalf("anonymous read with auth on: cache %s, member %s", dump(got), dump(want))
		}
	}
	if e.hits(t) != hits {
		t.Fatal("the cache answered an anonymous read with auth on")
	}
}

// testOldMember: a member older than the cache's minimum version is never
// trusted with the barrier; reads go to it.
func testOldMember(t *testing.T, cc *grpc.ClientConn) {
	restore := v2cache.SetMinVersion("99.0.0")
	defer restore()
	e := newEnv(t, cc, 1<<30)
	ctx := context.Background()
	if _, _, err := e.cached.Get(ctx, "/", v2store.GetOptions{}); err != nil { // starts the cache
		t.Fatal(err)
	}
	waitfor.True(t, hangGuard, "the cache to try the member", func() bool {
		return e.metric(t, "etcdshim_v2_read_cache_restarts_total", "") > 0
	})
	if _, _, err := e.cached.Get(ctx, "/", v2store.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if e.hits(t) != 0 {
		t.Fatal("the cache served behind a member it must not trust")
	}
}
