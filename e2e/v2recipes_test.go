package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/internal/waitfor"
)

// The v2 coordination recipes (issue 22), played against etcd 3.4.23's
// native v2 API and against the shim on 3.7, through one shim and through
// three shims on a 3-member cluster, with the same invariants on each:
//
//   - queue: 8 producers × 100 in-order POSTs, 4 consumers popping the
//     oldest item by compare-and-delete (prevIndex), 2 wait=true watchers;
//     no item lost or duplicated, FIFO per producer (and overall), every
//     watcher sees every item once, in order;
//   - counter: 40 clients × 10 prevValue increments of one key; the final
//     value is exactly 400 and every value from 1 to 400 was written once;
//   - lock: 20 contenders for a prevExist=false lock with a 3 s TTL over
//     30 s (10 s when CI=true, to keep CI short); some holders vanish without releasing, and
//     the lock must come free when their TTL runs out. Mutual exclusion is
//     judged by the store's own order: the lock key's watch history must
//     alternate create and release (compareAndDelete or expire), and every
//     acquisition and release a contender was told of must be in it;
//   - election: 5 candidates, the leader refreshing its TTL with
//     refresh=true&prevValue=<its term>; the leader is killed once (never
//     comes back) and paused once (comes back after its TTL and refreshes):
//     the watch history alternates terms, each kill ends its term with an
//     expire, another candidate then leads, and no refresh succeeds outside
//     its own term (the paused leader is told 101 or 100).
//
// Every response is checked against the set 3.4 gives in such a run (e.g.
// 201 or 412/105 for an acquisition); anything else is counted, and the
// count must be exactly 0 on every target.

// recipeTarget is where one run's v2 clients go: client i uses urls[i%n].
type recipeTarget struct {
	name string
	urls []string
	hc   *http.Client
	tag  string // distinguishes the keys of targets that share a cluster
}

type v2Node struct {
	Key           string   `json:"key"`
	Value         *string  `json:"value"`
	Dir           bool     `json:"dir"`
	Nodes         []v2Node `json:"nodes"`
	ModifiedIndex uint64   `json:"modifiedIndex"`
	CreatedIndex  uint64   `json:"createdIndex"`
}

type v2Reply struct {
	code  int
	index uint64 // X-Etcd-Index
	err   error  // transport
	raw   string
	Body  struct {
		Action    string  `json:"action"`
		Node      v2Node  `json:"node"`
		PrevNode  *v2Node `json:"prevNode"`
		ErrorCode int     `json:"errorCode"`
		Cause     string  `json:"cause"`
	}
}

func (r v2Reply) value() string {
	if r.Body.Node.Value == nil {
		return ""
	}
	return *r.Body.Node.Value
}

// is reports whether r has the status (and, for errors, the v2 code).
func (r v2Reply) is(code, ecode int) bool {
	return r.err == nil && r.code == code && (ecode == 0 || r.Body.ErrorCode == ecode)
}

func (r v2Reply) String() string {
	if r.err != nil {
		return "transport: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.code, strings.TrimSpace(r.raw))
}

// do sends one v2 request through client i's URL; query goes in the URL,
// form in the body.
func (tg recipeTarget) do(ctx context.Context, i int, method, key string, query, form url.Values) v2Reply {
	u := tg.urls[i%len(tg.urls)] + "/v2/keys" + key
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return v2Reply{err: err}
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := tg.hc.Do(req)
	if err != nil {
		return v2Reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return v2Reply{err: err}
	}
	r := v2Reply{code: resp.StatusCode, raw: string(b)}
	r.index, _ = strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
	_ = json.Unmarshal(b, &r.Body)
	return r
}

// currentIndex is the store's index now.
func (tg recipeTarget) currentIndex(t *testing.T) uint64 {
	t.Helper()
	r := tg.do(context.Background(), 0, http.MethodGet, "/", url.Values{"quorum": {"true"}}, nil)
	if !r.is(200, 0) || r.index == 0 {
		t.Fatalf("reading the index: %v", r)
	}
	return r.index
}

// unexpected counts the responses 3.4 would not give in the run.
type unexpected struct {
	mu      sync.Mutex
	n       int
	samples []string
}

func (u *unexpected) add(what string, r v2Reply) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.n++
	if len(u.samples) < 10 {
		u.samples = append(u.samples, what+": "+r.String())
	}
}

func (u *unexpected) check(t *testing.T) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n != 0 {
		t.Errorf("%d responses 3.4 would not give in this run, want 0; first ones:\n%s", u.n, strings.Join(u.samples, "\n"))
	}
}

// v2Event is one event a watcher received.
type v2Event struct {
	action string
	node   v2Node
}

// watchRec follows key with long polls from index from until stopped, as
// v2 clients do, each poll from the last event's index + 1. A poll that
// fails (401 included) is counted in bad and the log ends.
type watchRec struct {
	seen atomic.Uint64 // the last event's index
	stop context.CancelFunc
	done chan struct{}
	mu   sync.Mutex
	log  []v2Event
}

func watchLog(t *testing.T, tg recipeTarget, i int, key string, recursive bool, from uint64, bad *unexpected) *watchRec {
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	w := &watchRec{stop: stop, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		next := from
		for ctx.Err() == nil {
			q := url.Values{"wait": {"true"}, "waitIndex": {strconv.FormatUint(next, 10)}}
			if recursive {
				q.Set("recursive", "true")
			}
			r := tg.do(ctx, i, http.MethodGet, key, q, nil)
			if ctx.Err() != nil {
				return
			}
			if !r.is(200, 0) {
				bad.add("watch "+key, r)
				return
			}
			w.mu.Lock()
			w.log = append(w.log, v2Event{action: r.Body.Action, node: r.Body.Node})
			w.mu.Unlock()
			next = r.Body.Node.ModifiedIndex + 1
			w.seen.Store(r.Body.Node.ModifiedIndex)
		}
	}()
	return w
}

// wait waits until the watcher has an event at or above index, a minute at
// most.
func (w *watchRec) wait(t *testing.T, index uint64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for w.seen.Load() < index {
		if time.Now().After(deadline) {
			t.Errorf("a watcher stopped at index %d, want %d", w.seen.Load(), index)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// untilFree waits for key to be gone (a last holder's TTL to run out), then
// creates it once more and waits for the watcher to see that: the history
// before the returned index is complete.
func (w *watchRec) untilFree(t *testing.T, tg recipeTarget, key string) uint64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := tg.do(context.Background(), 0, http.MethodPut, key, nil, url.Values{"value": {"sentinel"}, "prevExist": {"false"}})
		if r.is(201, 0) {
			w.wait(t, r.Body.Node.CreatedIndex)
			return r.Body.Node.CreatedIndex
		}
		if !r.is(412, 105) || time.Now().After(deadline) {
			t.Fatalf("the key stayed held: %v", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// before is the part of a history below index.
func before(log []v2Event, index uint64) []v2Event {
	for i, ev := range log {
		if ev.node.ModifiedIndex >= index {
			return log[:i]
		}
	}
	return log
}

// historyUntilFree is the watch's complete history of key once the last
// holder is gone (see untilFree); it ends the watch.
func (w *watchRec) historyUntilFree(t *testing.T, tg recipeTarget, key string) []v2Event {
	t.Helper()
	end := w.untilFree(t, tg, key)
	return before(w.events(), end)
}

// events ends the watch and returns what it saw.
func (w *watchRec) events() []v2Event {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]v2Event(nil), w.log...)
}

func ciShort() bool { return os.Getenv("CI") == "true" }

func TestV2Recipes(t *testing.T) {
	e2eSerial(t)
	var (
		ref, cl *harness.Cluster
		wg      sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		ref = harness.StartCluster(t, harness.ClusterConfig{Version: "3.4", Size: 3, EnableV2: true})
	}()
	go func() {
		defer wg.Done()
		cl = harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 3})
	}()
	wg.Wait()
	if ref == nil || cl == nil {
		t.FailNow()
	}
	urls := cl.ClientURLs()
	var shims []string
	for i := range urls {
		// Each shim prefers its own member, as a sidecar does.
		eps := cl.SidecarEndpoints(i)
		shims = append(shims, harness.StartShim(t, harness.ShimConfig{Endpoints: eps}).URL)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}, Timeout: 60 * time.Second}
	targets := []recipeTarget{
		{name: "3.4 native v2", urls: ref.ClientURLs(), hc: hc, tag: "ref"},
		{name: "one shim", urls: shims[:1], hc: hc, tag: "one"},
		{name: "three shims", urls: shims, hc: hc, tag: "three"},
	}
	lockFor := 30 * time.Second
	if ciShort() {
		lockFor = 10 * time.Second
	}
	for _, w := range []struct {
		name string
		run  func(t *testing.T, tg recipeTarget)
		// timed workloads run on every target at once: they mostly wait
		// for TTLs, and their invariants do not depend on the load.
		timed bool
	}{
		{"queue", recipeQueue, false},
		{"counter", recipeCounter, false},
		{"lock", func(t *testing.T, tg recipeTarget) { recipeLock(t, tg, lockFor) }, true},
		{"election", recipeElection, true},
	} {
		t.Run(w.name, func(t *testing.T) {
			for _, tg := range targets {
				t.Run(tg.name, func(t *testing.T) {
					if w.timed {
						t.Parallel()
					}
					w.run(t, tg)
				})
			}
		})
	}
}

// recipeQueue: 8 producers × 100 POSTs, 4 consumers popping by
// compare-and-delete, 2 watchers.
func recipeQueue(t *testing.T, tg recipeTarget) {
	const producers, perProducer, consumers = 8, 100, 4
	dir := "/recipes-" + tg.tag + "/queue"
	var bad unexpected
	from := tg.currentIndex(t) + 1
	watchers := []*watchRec{watchLog(t, tg, 1, dir, true, from, &bad), watchLog(t, tg, 2, dir, true, from, &bad)}

	type item struct {
		value, name       string
		created, consumed uint64
		producer, seq     int
	}
	var (
		mu       sync.Mutex
		produced []item
		popped   []item
		nPopped  atomic.Int64
		run      sync.WaitGroup
	)
	var producing atomic.Int64
	producing.Store(producers)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for c := 0; c < consumers; c++ {
		run.Add(1)
		go func(c int) {
			defer run.Done()
			for nPopped.Load() < producers*perProducer && ctx.Err() == nil {
				drained := producing.Load() == 0 // read before the listing
				r := tg.do(ctx, c, http.MethodGet, dir, url.Values{"sorted": {"true"}, "quorum": {strconv.FormatBool(drained)}}, nil)
				if !r.is(200, 0) && !r.is(404, 100) { // 404: no item made the directory yet
					bad.add("list", r)
					continue
				}
				if len(r.Body.Node.Nodes) == 0 {
					if drained {
						return // every producer is done and the queue is empty
					}
					time.Sleep(5 * time.Millisecond)
					continue
				}
				head := r.Body.Node.Nodes[0]
				d := tg.do(ctx, c, http.MethodDelete, head.Key, url.Values{"prevIndex": {strconv.FormatUint(head.ModifiedIndex, 10)}}, nil)
				switch {
				case d.is(200, 0) && d.Body.Action == "compareAndDelete":
					mu.Lock()
					popped = append(popped, item{value: *d.Body.PrevNode.Value, name: head.Key, consumed: d.Body.Node.ModifiedIndex})
					mu.Unlock()
					nPopped.Add(1)
				case d.is(404, 100), d.is(412, 101): // another consumer took it
				default:
					bad.add("pop", d)
				}
			}
		}(c)
	}
	var prod sync.WaitGroup
	for p := 0; p < producers; p++ {
		prod.Add(1)
		go func(p int) {
			defer prod.Done()
			defer producing.Add(-1)
			for s := 0; s < perProducer; s++ {
				v := fmt.Sprintf("p%d-%03d", p, s)
				r := tg.do(ctx, consumers+p, http.MethodPost, dir, nil, url.Values{"value": {v}})
				if !r.is(201, 0) || r.Body.Action != "create" {
					bad.add("POST", r)
					continue
				}
				mu.Lock()
				produced = append(produced, item{value: v, name: r.Body.Node.Key, created: r.Body.Node.CreatedIndex, producer: p, seq: s})
				mu.Unlock()
			}
		}(p)
	}
	prod.Wait()
	run.Wait()
	bad.check(t)
	if t.Failed() {
		return
	}
	// The watchers must reach the last pop before they stop.
	var last uint64
	for _, it := range popped {
		last = max(last, it.consumed)
	}
	var logs [][]v2Event
	for _, w := range watchers {
		w.wait(t, last)
	}
	for _, w := range watchers {
		w.stop()
	}
	for _, w := range watchers {
		logs = append(logs, w.events())
	}
	bad.check(t) // the watchers' polls too

	want := producers * perProducer
	if len(produced) != want || len(popped) != want {
		t.Fatalf("produced %d, popped %d, want %d each", len(produced), len(popped), want)
	}
	// Names: unique, 20 digits, increasing in creation order and per
	// producer.
	sort.Slice(produced, func(i, j int) bool { return produced[i].created < produced[j].created })
	byName := map[string]item{}
	lastSeq := map[int]int{}
	for i, it := range produced {
		if i > 0 && it.name <= produced[i-1].name {
			t.Fatalf("created at %d named %s, after %s created at %d", it.created, it.name, produced[i-1].name, produced[i-1].created)
		}
		if s, ok := lastSeq[it.producer]; ok && it.seq <= s {
			t.Fatalf("producer %d: item %d created after item %d", it.producer, it.seq, s)
		}
		lastSeq[it.producer] = it.seq
		byName[it.name] = it
	}
	// Pops: each item once, with its own value, in name order (so FIFO per
	// producer and overall).
	sort.Slice(popped, func(i, j int) bool { return popped[i].consumed < popped[j].consumed })
	seen := map[string]bool{}
	for i, it := range popped {
		src, ok := byName[it.name]
		switch {
		case !ok:
			t.Fatalf("popped %s, which no producer created", it.name)
		case seen[it.name]:
			t.Fatalf("%s popped twice", it.name)
		case src.value != it.value:
			t.Fatalf("%s popped with value %q, created with %q", it.name, it.value, src.value)
		case i > 0 && it.name <= popped[i-1].name:
			t.Fatalf("popped %s after %s: not FIFO", it.name, popped[i-1].name)
		}
		seen[it.name] = true
	}
	// Watchers: every create once, in order, and every pop once.
	for wi, log := range logs {
		var creates, deletes []string
		var prev uint64
		for _, ev := range log {
			if ev.node.ModifiedIndex <= prev {
				t.Fatalf("watcher %d: index %d after %d", wi, ev.node.ModifiedIndex, prev)
			}
			prev = ev.node.ModifiedIndex
			switch ev.action {
			case "create":
				creates = append(creates, ev.node.Key)
			case "compareAndDelete":
				deletes = append(deletes, ev.node.Key)
			default:
				t.Fatalf("watcher %d: unexpected %s of %s", wi, ev.action, ev.node.Key)
			}
		}
		if len(creates) != want || len(deletes) != want {
			t.Fatalf("watcher %d saw %d creates and %d deletes, want %d each", wi, len(creates), len(deletes), want)
		}
		for i, k := range creates {
			if k != produced[i].name {
				t.Fatalf("watcher %d: create %d is %s, want %s", wi, i, k, produced[i].name)
			}
		}
		for i, k := range deletes {
			if k != popped[i].name {
				t.Fatalf("watcher %d: delete %d is %s, want %s", wi, i, k, popped[i].name)
			}
		}
	}
	t.Logf("%s: %d items through %d producers and %d consumers, names %s … %s", tg.name, want, producers, consumers,
		produced[0].name, produced[want-1].name)
}

// recipeCounter: 40 clients × 10 prevValue increments.
func recipeCounter(t *testing.T, tg recipeTarget) {
	const clients, each = 40, 10
	key := "/recipes-" + tg.tag + "/counter"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if r := tg.do(ctx, 0, http.MethodPut, key, nil, url.Values{"value": {"0"}}); !r.is(201, 0) {
		t.Fatalf("initial value: %v", r)
	}
	// A GET without quorum=true is local: on a 3.4 follower, as through
	// another shim, a key written a moment ago elsewhere may not be there
	// yet. The counter exists before the clients start, as it would.
	for i := range tg.urls {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if r := tg.do(ctx, i, http.MethodGet, key, nil, nil); r.is(200, 0) {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("the counter is not readable through %s: %v", tg.urls[i], r)
			}
		}
	}
	var (
		bad      unexpected
		mu       sync.Mutex
		written  = map[int]int{}
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for done := 0; done < each && ctx.Err() == nil; {
				g := tg.do(ctx, c, http.MethodGet, key, nil, nil)
				if !g.is(200, 0) {
					bad.add("get", g)
					continue
				}
				v, err := strconv.Atoi(g.value())
				if err != nil {
					bad.add("value "+g.value(), g)
					continue
				}
				r := tg.do(ctx, c, http.MethodPut, key, nil, url.Values{"value": {strconv.Itoa(v + 1)}, "prevValue": {g.value()}})
				switch {
				case r.is(200, 0) && r.Body.Action == "compareAndSwap":
					mu.Lock()
					written[v+1]++
					mu.Unlock()
					done++
				case r.is(412, 101):
					failures.Add(1)
				default:
					bad.add("CAS", r)
				}
			}
		}(c)
	}
	wg.Wait()
	bad.check(t)
	final := tg.do(ctx, 0, http.MethodGet, key, url.Values{"quorum": {"true"}}, nil)
	if final.value() != strconv.Itoa(clients*each) {
		t.Errorf("final value %q, want %d", final.value(), clients*each)
	}
	for v := 1; v <= clients*each; v++ {
		if written[v] != 1 {
			t.Errorf("value %d written %d times, want once", v, written[v])
		}
	}
	t.Logf("%s: %d increments, %d compare failures (412/101)", tg.name, clients*each, failures.Load())
}

// recipeLock: 20 contenders for a TTL lock.
func recipeLock(t *testing.T, tg recipeTarget, runFor time.Duration) {
	const contenders, ttl = 20, 3
	key := "/recipes-" + tg.tag + "/lock"
	maxVanish := int64(runFor / (10 * time.Second) * 2) // 2 per 10 s
	var bad unexpected
	watch := watchLog(t, tg, 0, key, false, tg.currentIndex(t)+1, &bad)

	type term struct {
		value    string
		created  uint64
		released uint64 // index of the holder's release; 0 if it vanished
	}
	var (
		mu      sync.Mutex
		terms   []term
		vanish  atomic.Int64
		acquire atomic.Int64
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	for c := 0; c < contenders; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				v := fmt.Sprintf("c%02d-%d", c, seq)
				// Not cut short by the run's end: a create the store made
				// must be known to its holder.
				r := tg.do(context.Background(), c, http.MethodPut, key, nil, url.Values{"value": {v}, "prevExist": {"false"}, "ttl": {strconv.Itoa(ttl)}})
				switch {
				case r.is(412, 105):
					time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
					continue
				case !r.is(201, 0):
					bad.add("acquire", r)
					continue
				}
				created := r.Body.Node.CreatedIndex
				n := acquire.Add(1)
				// Every 7th holder vanishes (a crashed process): it never
				// releases, and the lock must free itself after the TTL.
				if n%7 == 0 && vanish.Add(1) <= maxVanish {
					mu.Lock()
					terms = append(terms, term{value: v, created: created})
					mu.Unlock()
					return
				}
				time.Sleep(time.Duration(20+rand.IntN(130)) * time.Millisecond)
				d := tg.do(context.Background(), c, http.MethodDelete, key, url.Values{"prevValue": {v}}, nil)
				if !d.is(200, 0) || d.Body.Action != "compareAndDelete" {
					bad.add("release", d)
					continue
				}
				mu.Lock()
				terms = append(terms, term{value: v, created: created, released: d.Body.Node.ModifiedIndex})
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
			}
		}(c)
	}
	wg.Wait()
	// A vanished last holder's expiry belongs in the history.
	log := watch.historyUntilFree(t, tg, key)
	bad.check(t)

	// The history alternates: create by one holder, then its release or
	// expiry, then the next create.
	byCreated := map[uint64]term{}
	for _, tm := range terms {
		byCreated[tm.created] = tm
	}
	var open *v2Event
	expires, creates := 0, 0
	inLog := map[uint64]bool{}
	for i := range log {
		ev := log[i]
		switch ev.action {
		case "create":
			if open != nil {
				t.Fatalf("%s created at %d while %s (created at %d) held the lock", ev.node.Key, ev.node.CreatedIndex, *open.node.Value, open.node.CreatedIndex)
			}
			open = &log[i]
			creates++
			inLog[ev.node.CreatedIndex] = true
		case "compareAndDelete", "expire":
			if open == nil || ev.node.CreatedIndex != open.node.CreatedIndex {
				t.Fatalf("%s of a lock created at %d, which is not the holder's", ev.action, ev.node.CreatedIndex)
			}
			tm, ok := byCreated[ev.node.CreatedIndex]
			if !ok {
				t.Fatalf("%s of a term no contender held (created at %d)", ev.action, ev.node.CreatedIndex)
			}
			if ev.action == "expire" {
				expires++
				if tm.released != 0 {
					t.Fatalf("the lock created at %d expired, but its holder released it at %d", tm.created, tm.released)
				}
			} else if tm.released != ev.node.ModifiedIndex {
				t.Fatalf("the lock created at %d released at %d, its holder was told %d", tm.created, ev.node.ModifiedIndex, tm.released)
			}
			open = nil
		default:
			t.Fatalf("unexpected %s on the lock", ev.action)
		}
	}
	if open != nil {
		t.Fatalf("the lock is still held by %s at the end", *open.node.Value)
	}
	for _, tm := range terms {
		if !inLog[tm.created] {
			t.Fatalf("%s was told it holds the lock (created at %d), but no such create is in the history", tm.value, tm.created)
		}
	}
	vanished := int(min(vanish.Load(), maxVanish))
	if expires != vanished || vanished == 0 {
		t.Errorf("%d expiries for %d vanished holders, want as many and at least one", expires, vanished)
	}
	if creates != len(terms) {
		t.Errorf("%d creates in the history, %d holders", creates, len(terms))
	}
	t.Logf("%s: %d holders over %s, %d vanished and expired, none overlapping", tg.name, len(terms), runFor, expires)
}

// recipeElection: 5 candidates; the leader is killed once and paused once.
func recipeElection(t *testing.T, tg recipeTarget) {
	const candidates, ttl = 5, 3
	key := "/recipes-" + tg.tag + "/leader"
	var bad unexpected
	watch := watchLog(t, tg, 0, key, false, tg.currentIndex(t)+1, &bad)

	type refresh struct {
		term  string
		index uint64
	}
	var (
		mu        sync.Mutex
		leader    string // the term value that last won, "" none
		refreshes []refresh
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type control struct {
		kill  chan struct{}
		pause chan time.Duration
	}
	ctl := make([]control, candidates)
	var zombie atomic.Value // the paused leader's refresh reply
	for c := 0; c < candidates; c++ {
		ctl[c] = control{kill: make(chan struct{}, 1), pause: make(chan time.Duration, 1)}
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for inc := 0; ctx.Err() == nil; inc++ {
				v := fmt.Sprintf("cand%d-%d", c, inc)
				r := tg.do(ctx, c, http.MethodPut, key, nil, url.Values{"value": {v}, "prevExist": {"false"}, "ttl": {strconv.Itoa(ttl)}})
				switch {
				case ctx.Err() != nil:
					return
				case r.is(412, 105):
					time.Sleep(time.Duration(150+rand.IntN(100)) * time.Millisecond)
					continue
				case !r.is(201, 0):
					bad.add("campaign", r)
					continue
				}
				mu.Lock()
				leader = v
				mu.Unlock()
			lead:
				for {
					select {
					case <-ctx.Done():
						return
					case <-ctl[c].kill:
						// Crashed: never refreshes again; a new process
						// campaigns a second later.
						time.Sleep(time.Second)
						break lead
					case d := <-ctl[c].pause:
						// A stall longer than the TTL, then the refresh it
						// had pending: the store must refuse it.
						time.Sleep(d)
						z := tg.do(ctx, c, http.MethodPut, key, nil, url.Values{"refresh": {"true"}, "prevExist": {"true"}, "prevValue": {v}, "ttl": {strconv.Itoa(ttl)}})
						zombie.Store(z)
						if z.is(200, 0) {
							mu.Lock()
							refreshes = append(refreshes, refresh{term: v, index: z.index})
							mu.Unlock()
						}
						break lead
					case <-time.After(500 * time.Millisecond):
					}
					f := tg.do(ctx, c, http.MethodPut, key, nil, url.Values{"refresh": {"true"}, "prevExist": {"true"}, "prevValue": {v}, "ttl": {strconv.Itoa(ttl)}})
					if ctx.Err() != nil {
						return
					}
					if !f.is(200, 0) {
						bad.add("refresh by the live leader", f) // lost leadership while refreshing
						break lead
					}
					mu.Lock()
					refreshes = append(refreshes, refresh{term: v, index: f.index})
					mu.Unlock()
				}
			}
		}(c)
	}
	current := func() (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if leader == "" {
			return -1, ""
		}
		c, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(leader, "-", 2)[0], "cand"))
		return c, leader
	}
	waitNew := func(old string) string {
		var l string
		waitfor.True(t, 30*time.Second, "a new leader after "+old, func() bool {
			_, l = current()
			return l != "" && l != old
		})
		return l
	}
	// refreshed holds once term has refreshed twice: it has led a while,
	// and its refreshes are in the history the terms are checked against.
	refreshed := func(term string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, r := range refreshes {
				if r.term == term {
					n++
				}
			}
			return n >= 2
		}
	}
	first := waitNew("")
	waitfor.True(t, 30*time.Second, "two refreshes by the first leader", refreshed(first))
	c1, killed := current()
	ctl[c1].kill <- struct{}{}
	second := waitNew(killed)
	waitfor.True(t, 30*time.Second, "two refreshes by the second leader", refreshed(second))
	c2, paused := current()
	ctl[c2].pause <- (ttl + 3) * time.Second
	third := waitNew(paused)
	waitfor.True(t, 30*time.Second, "the paused leader's late refresh", func() bool { return zombie.Load() != nil })
	waitfor.True(t, 30*time.Second, "two refreshes by the third leader", refreshed(third))
	cancel()
	wg.Wait()
	log := watch.historyUntilFree(t, tg, key)
	bad.check(t)

	z, _ := zombie.Load().(v2Reply)
	if !z.is(412, 101) && !z.is(404, 100) {
		t.Errorf("the paused leader's refresh after its TTL: %v, want 412/101 or 404/100", z)
	}
	// Terms from the history: [created, ended) per value.
	type span struct{ from, to uint64 }
	spans := map[string]span{}
	var order []string
	var open *v2Event
	endedBy := map[string]string{}
	for i := range log {
		ev := log[i]
		switch ev.action {
		case "create":
			if open != nil {
				t.Fatalf("%s won at %d while %s led", *ev.node.Value, ev.node.CreatedIndex, *open.node.Value)
			}
			open = &log[i]
			spans[*ev.node.Value] = span{from: ev.node.CreatedIndex, to: ^uint64(0)}
			order = append(order, *ev.node.Value)
		case "expire", "delete", "compareAndDelete":
			if open == nil || ev.node.CreatedIndex != open.node.CreatedIndex {
				t.Fatalf("%s of a term created at %d, which is not the leader's", ev.action, ev.node.CreatedIndex)
			}
			v := *open.node.Value
			spans[v] = span{from: spans[v].from, to: ev.node.ModifiedIndex}
			endedBy[v] = ev.action
			open = nil
		default:
			t.Fatalf("unexpected %s on the leader key", ev.action)
		}
	}
	for _, want := range []string{first, second, third} {
		if _, ok := spans[want]; !ok {
			t.Fatalf("term %s is not in the history %q", want, order)
		}
	}
	for _, v := range []string{killed, paused} {
		if endedBy[v] != "expire" {
			t.Errorf("term %s ended by %q, want expire", v, endedBy[v])
		}
	}
	if second == killed || third == paused {
		t.Errorf("leadership did not change: %s → %s, %s → %s", killed, second, paused, third)
	}
	// One leader at a time: a refresh succeeds only inside its own term.
	for _, r := range refreshes {
		s := spans[r.term]
		if r.index < s.from || r.index >= s.to {
			t.Errorf("%s refreshed at index %d, outside its term [%d, %d)", r.term, r.index, s.from, s.to)
		}
	}
	t.Logf("%s: terms %q; killed %s, paused %s (then told %d/%d); %d successful refreshes",
		tg.name, order, killed, paused, z.code, z.Body.ErrorCode, len(refreshes))
}
