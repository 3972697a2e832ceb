package v2store_test

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/etcdtest"
	v2 "github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// countingConn counts unary calls by method.
type countingConn struct {
	grpc.ClientConnInterface
	mu sync.Mutex
	n  map[string]int64
}

func (c *countingConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int64{}
	}
	c.n[method]++
	c.mu.Unlock()
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

func (c *countingConn) calls(method string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[method]
}

// TestInOrderContention: in-order creates into one directory from two
// stores on one member (two shims) and from many goroutines each never fail,
// and their names are unique and increase in creation order; names stay
// above keys other writers put among them (an import, a v3 client), even
// far above the revision, and step over keys whose names only look like
// in-order names.
func TestInOrderContention(t *testing.T) {
	_, cc := etcdtest.Start(t)
	ctx := context.Background()
	kv := etcdrpc.NewKVClient(cc)
	v3put := func(t *testing.T, key string) {
		t.Helper()
		if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	type created struct {
		name    string
		created uint64
		by      int
		seq     int
	}
	// store is a v2 store on cc under prefix. The test checks names, not
	// latency: each create waits its turn behind the other producers of its
	// store, and under -race on a loaded machine the turns took longer than
	// the default 10 s request timeout ("the request's deadline passed
	// before a free in-order name was won"). The bound stays, as a hang
	// guard.
	store := func(cc grpc.ClientConnInterface, prefix string) *v2.V3Store {
		return v2.NewV3(cc, prefix).WithTimeout(2 * time.Minute)
	}
	// produce runs stores×workers×n creates into dir and returns them.
	produce := func(t *testing.T, stores []*v2.V3Store, dir string, workers, n int) []created {
		var (
			mu   sync.Mutex
			out  []created
			fail int
			wg   sync.WaitGroup
		)
		for si, s := range stores {
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(by int) {
					defer wg.Done()
					for i := 0; i < n; i++ {
						ev, _, err := s.CreateInOrder(ctx, dir, v2.SetOptions{Value: fmt.Sprintf("%d-%d", by, i)})
						mu.Lock()
						if err != nil {
							fail++
							t.Errorf("producer %d, item %d: %v", by, i, err)
						} else {
							out = append(out, created{name: path.Base(ev.Node.Key), created: ev.Node.CreatedIndex, by: by, seq: i})
						}
						mu.Unlock()
					}
				}(si*workers + w)
			}
		}
		wg.Wait()
		if fail != 0 {
			t.Fatalf("%d creates failed, want 0", fail)
		}
		return out
	}
	// check: unique names, name order = creation (revision) order, FIFO per
	// producer.
	check := func(t *testing.T, got []created, want int) {
		t.Helper()
		if len(got) != want {
			t.Fatalf("%d created, want %d", len(got), want)
		}
		sort.Slice(got, func(i, j int) bool { return got[i].created < got[j].created })
		last := map[int]int{}
		for i, c := range got {
			if len(c.name) != 20 {
				t.Fatalf("name %q is not 20 digits", c.name)
			}
			if i > 0 && c.name <= got[i-1].name {
				t.Fatalf("created at %d named %s, after %s created at %d", c.created, c.name, got[i-1].name, got[i-1].created)
			}
			if s, ok := last[c.by]; ok && c.seq <= s {
				t.Fatalf("producer %d: item %d created after item %d", c.by, s, c.seq)
			}
			last[c.by] = c.seq
		}
	}

	t.Run("one store, 8 producers", func(t *testing.T) {
		cn := &countingConn{ClientConnInterface: cc}
		s := store(cn, "/unit-contention-one")
		got := produce(t, []*v2.V3Store{s}, "/q", 8, 25)
		check(t, got, 200)
		// Creates within one store take turns: none lost a race, so each
		// was one read and one transaction.
		if txns, ranges := cn.calls("/etcdserverpb.KV/Txn"), cn.calls("/etcdserverpb.KV/Range"); txns != 200 || ranges != 200 {
			t.Errorf("%d transactions and %d reads for 200 creates, want 200 each", txns, ranges)
		}
		// Nothing else wrote: every name is its createdIndex.
		for _, c := range got {
			if c.name != fmt.Sprintf("%020d", c.created) {
				t.Errorf("name %s, createdIndex %d", c.name, c.created)
			}
		}
	})

	t.Run("two stores, 4 producers each, a consumer", func(t *testing.T) {
		a, b := store(cc, "/unit-contention-two"), store(cc, "/unit-contention-two")
		// The consumer empties the queue as it fills, so a name given
		// above another store's read is often gone by the time that
		// store's create lands: names must still never repeat or go back.
		stop := make(chan struct{})
		var consumer sync.WaitGroup
		consumer.Add(1)
		go func() {
			defer consumer.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ev, _, err := a.Get(ctx, "/q", v2.GetOptions{Sorted: true, Quorum: true})
				if err != nil || len(ev.Node.Nodes) == 0 {
					continue
				}
				head := ev.Node.Nodes[0]
				_, _, _ = b.Delete(ctx, head.Key, v2.DeleteOptions{PrevIndex: head.ModifiedIndex})
			}
		}()
		got := produce(t, []*v2.V3Store{a, b}, "/q", 4, 25)
		close(stop)
		consumer.Wait()
		check(t, got, 200)
	})

	t.Run("imported names far above the revision", func(t *testing.T) {
		const prefix = "/unit-contention-import"
		// 600 keys of a queue copied from a 3.4 store whose index ran ahead:
		// more than one scan page.
		ops := make([]*pb.RequestOp, 0, 100)
		for i := 0; i < 600; i++ {
			key := fmt.Sprintf("%s/q/%020d", prefix, 100000+i)
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte("old")}}})
			if len(ops) == 100 {
				if _, err := kv.Txn(ctx, &pb.TxnRequest{Success: ops}); err != nil {
					t.Fatal(err)
				}
				ops = ops[:0]
			}
		}
		s := store(cc, prefix)
		got := produce(t, []*v2.V3Store{s, store(cc, prefix)}, "/q", 2, 10)
		check(t, got, 40)
		for _, c := range got {
			if n, _ := strconv.ParseUint(c.name, 10, 64); n <= 100599 {
				t.Errorf("name %s not above the imported %020d", c.name, 100599)
			}
		}
		// A fresh store (a restarted shim) knows no hint: still above.
		ev, _, err := v2.NewV3(cc, prefix).CreateInOrder(ctx, "/q", v2.SetOptions{Value: "after restart"})
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.ParseUint(path.Base(ev.Node.Key), 10, 64); n <= 100639 {
			t.Errorf("after a restart: name %s, want above the 40 just created", ev.Node.Key)
		}
	})

	t.Run("a v3 client's and look-alike keys", func(t *testing.T) {
		const prefix = "/unit-contention-v3"
		s := v2.NewV3(cc, prefix)
		first, _, err := s.CreateInOrder(ctx, "/q", v2.SetOptions{Value: "a"})
		if err != nil {
			t.Fatal(err)
		}
		// A v3 client takes the name the next create would get, and
		// others that sort among the names without being names.
		r, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("x"), CountOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		taken := fmt.Sprintf("%020d", r.Header.Revision+5)
		for _, k := range []string{"/q/" + taken, "/q/1", "/q/5abc/child", "/q/config"} {
			v3put(t, prefix+k)
		}
		var names []string
		for i := 0; i < 5; i++ {
			ev, _, err := s.CreateInOrder(ctx, "/q", v2.SetOptions{Value: "b"})
			if err != nil {
				t.Fatalf("create %d: %v", i, err)
			}
			names = append(names, path.Base(ev.Node.Key))
		}
		if names[0] <= taken || path.Base(first.Node.Key) >= names[0] {
			t.Errorf("names %q, want all above the v3 client's %s", names, taken)
		}
		if !sort.StringsAreSorted(names) {
			t.Errorf("names %q not increasing", names)
		}
		// The look-alikes did not push the names away from the revision.
		if n, _ := strconv.ParseUint(names[4], 10, 64); n > uint64(r.Header.Revision)+100 {
			t.Errorf("name %s jumped far above the revision %d", names[4], r.Header.Revision)
		}
	})

	t.Run("a file on the path is still 104", func(t *testing.T) {
		s := v2.NewV3(cc, "/unit-contention-err")
		if _, _, err := s.Put(ctx, "/f", v2.SetOptions{Value: "file"}); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.CreateInOrder(ctx, "/f", v2.SetOptions{Value: "x"})
		if e, ok := err.(*v2.Error); !ok || e.Code != v2.EcodeNotDir || e.Cause != "/f" {
			t.Errorf("POST under a file: %v, want 104 naming /f", err)
		}
	})
}
