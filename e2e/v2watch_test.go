package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// watchOnce issues a long poll and returns its canonical answer once the
// trigger (run after the poll is registered) has happened.
func watchOnce(t *testing.T, base, query string, trigger func()) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v2/keys"+query, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("watch %s: %v", query, err)
	}
	defer resp.Body.Close()
	if trigger != nil {
		trigger()
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func v2do(t *testing.T, base, method, path, form string) string {
	t.Helper()
	req, _ := http.NewRequest(method, base+"/v2/keys"+path, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, b := send(t, nil, req)
	return resp.Header.Get("X-Etcd-Index") + " " + string(b)
}

var (
	indexFields = regexp.MustCompile(`"(modifiedIndex|createdIndex|index)":\d+`)
	// Watch events carry no expiration or ttl from the shim (v3 events do
	// not carry lease deadlines): an accepted difference, see docs/v2.md.
	ttlFields = regexp.MustCompile(`"(expiration":"[^"]*|ttl":\d+)",?`)
)

// shape removes indexes and TTL fields, for comparing watch answers.
func shape(s string) string {
	s = ttlFields.ReplaceAllString(strings.TrimSpace(s), "")
	return indexFields.ReplaceAllString(s, `"$1":N`)
}

// TestV2WatchDifferential compares watch answers with etcd 3.4's.
func TestV2WatchDifferential(t *testing.T) {
	e2eSerial(t)
	targets := startV2Targets(t)
	type scenario struct {
		name string
		run  func(t *testing.T, base, r string) []string
	}
	scenarios := []scenario{
		{"next event", func(t *testing.T, b, r string) []string {
			v2do(t, b, "PUT", r+"/k", "value=1")
			code, body := watchOnce(t, b, r+"/k?wait=true", func() { v2do(t, b, "PUT", r+"/k", "value=2&prevExist=true") })
			return []string{strconv.Itoa(code), shape(body)}
		}},
		{"waitIndex in the past", func(t *testing.T, b, r string) []string {
			idx := strings.Fields(v2do(t, b, "PUT", r+"/k", "value=1"))[0]
			v2do(t, b, "PUT", r+"/k", "value=2")
			code, body := watchOnce(t, b, r+"/k?wait=true&waitIndex="+idx, nil)
			return []string{strconv.Itoa(code), shape(body)}
		}},
		{"recursive", func(t *testing.T, b, r string) []string {
			code, body := watchOnce(t, b, r+"/d?wait=true&recursive=true", func() { v2do(t, b, "PUT", r+"/d/x/y", "value=1&prevExist=false") })
			return []string{strconv.Itoa(code), shape(body)}
		}},
		{"delete of watched dir", func(t *testing.T, b, r string) []string {
			v2do(t, b, "PUT", r+"/d/x", "value=1")
			code, body := watchOnce(t, b, r+"/d/x?wait=true", func() { v2do(t, b, "DELETE", r+"/d?recursive=true", "") })
			return []string{strconv.Itoa(code), shape(body)}
		}},
		{"compare and delete", func(t *testing.T, b, r string) []string {
			v2do(t, b, "PUT", r+"/k", "value=1")
			code, body := watchOnce(t, b, r+"/k?wait=true", func() { v2do(t, b, "DELETE", r+"/k?prevValue=1", "") })
			return []string{strconv.Itoa(code), shape(body)}
		}},
		{"expire", func(t *testing.T, b, r string) []string {
			v2do(t, b, "PUT", r+"/k", "value=1&ttl=1")
			code, body := watchOnce(t, b, r+"/k?wait=true", nil)
			return []string{strconv.Itoa(code), shape(body)}
		}},
		{"hidden keys skipped", func(t *testing.T, b, r string) []string {
			code, body := watchOnce(t, b, r+"/h?wait=true&recursive=true", func() {
				v2do(t, b, "PUT", r+"/h/_secret", "value=1")
				v2do(t, b, "PUT", r+"/h/seen", "value=2")
			})
			return []string{strconv.Itoa(code), shape(body)}
		}},
		{"wait on put", func(t *testing.T, b, r string) []string {
			return []string{v2do(t, b, "PUT", r+"/k?wait=true", "value=1")[2:]}
		}},
		{"stream", func(t *testing.T, b, r string) []string {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", b+"/v2/keys"+r+"/s?wait=true&stream=true&recursive=true", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			var out []string
			for i := 0; i < 3; i++ {
				v2do(t, b, "PUT", fmt.Sprintf("%s/s/%d", r, i), "value=v")
				if !sc.Scan() {
					t.Fatalf("stream ended after %d events", i)
				}
				out = append(out, shape(sc.Text()))
			}
			return out
		}},
	}
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			root := fmt.Sprintf("/w%03d", i)
			want := sc.run(t, targets[0].url, root)
			for _, tg := range targets[1:] {
				if got := sc.run(t, tg.url, root); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s:\n 3.4: %s\n got: %s", tg.name, strings.Join(want, "\n      "), strings.Join(got, "\n      "))
				}
			}
		})
	}
}

// TestV2WatchHistoryCleared: a waitIndex older than the history is 401.
func TestV2WatchHistoryCleared(t *testing.T) {
	e2eParallel(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: []string{"--v2-watch-history", "50"}})
	first := strings.Fields(v2do(t, shim.URL, "PUT", "/hist/k", "value=0"))[0]
	for i := 1; i < 60; i++ {
		v2do(t, shim.URL, "PUT", "/hist/k", fmt.Sprintf("value=%d", i))
	}
	code, body := watchOnce(t, shim.URL, "/hist/k?wait=true&waitIndex="+first, nil)
	if code != 400 || !strings.Contains(body, `"errorCode":401`) || !strings.Contains(body, "the requested history has been cleared [") {
		t.Fatalf("stale waitIndex: %d %s", code, body)
	}
}

// TestV2WatchGoClient: client/v2's Watcher sees 1,000 sequential events.
func TestV2WatchGoClient(t *testing.T) {
	e2eParallel(t)
	_, shim := startV2Shim(t)
	k := clientv2.NewKeysAPI(newClientV2(t, shim.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := k.Set(ctx, "/gw/start", "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if _, err := k.Set(ctx, fmt.Sprintf("/gw/k%d", i%7), strconv.Itoa(i), nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	w := k.Watcher("/gw", &clientv2.WatcherOptions{AfterIndex: r.Index, Recursive: true})
	last := uint64(0)
	for i := 0; i < n; i++ {
		resp, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if resp.Node.Value != strconv.Itoa(i) || resp.Node.ModifiedIndex <= last {
			t.Fatalf("event %d: value %s index %d after %d", i, resp.Node.Value, resp.Node.ModifiedIndex, last)
		}
		last = resp.Node.ModifiedIndex
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestV2WatchOneUpstreamWatch: many long polls cost the member one watch,
// and one write wakes all of them.
func TestV2WatchOneUpstreamWatch(t *testing.T) {
	e2eParallel(t)
	cl, shim := startV2Shim(t)
	watchers := func() float64 {
		v, ok := scrapeValue(t, cl.ClientURLs()[0]+"/metrics", "etcd_debugging_mvcc_watcher_total")
		if !ok {
			t.Fatal("the member's /metrics has no etcd_debugging_mvcc_watcher_total")
		}
		return v
	}
	before := watchers()
	const n = 1000
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: n}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	var mu sync.Mutex
	woken := 0
	// Each waiter reports once: nil when its headers arrived (it waits),
	// else why it could not; a failed waiter must fail the test, not hang it.
	ready := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(shim.URL + "/v2/keys/many/k?wait=true")
			ready <- err
			if err != nil {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `"value":"wake"`) {
				mu.Lock()
				woken++
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-ready; err != nil {
			t.Fatalf("long poll %d: %v", i, err)
		}
	}
	during := watchers()
	v2do(t, shim.URL, "PUT", "/many/k", "value=wake")
	wg.Wait()
	if woken != n {
		t.Fatalf("%d of %d waiters woke", woken, n)
	}
	if during-before > 2 {
		t.Fatalf("upstream watchers grew by %v for %d long polls", during-before, n)
	}
	t.Logf("%d long polls: upstream watchers %v → %v", n, before, during)
}

// TestV2WatchOneFollower: with v2 long polls waiting and cached GETs being
// served, the member counts one watcher, on one watch stream, for the shim:
// the follower of the v2 keyspace, which feeds both the watch history and
// the read cache. The shim keeps no other watch of its own: the gateway's
// websocket watches and the watches run as their client (auth on, no
// --user) are per client, and none is open here.
func TestV2WatchOneFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	t.Parallel()
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1})
	member := cl.ClientURLs()[0] + "/metrics"
	memberWatches := func() (watchers, streams float64) {
		_, _, values := textPage(t, member)
		for name, v := range map[string]*float64{"etcd_debugging_mvcc_watcher_total": &watchers, "etcd_debugging_mvcc_watch_stream_total": &streams} {
			f, err := strconv.ParseFloat(values[name], 64)
			if err != nil {
				t.Fatalf("the member's /metrics has no %s", name)
			}
			*v = f
		}
		return watchers, streams
	}
	if w, s := memberWatches(); w != 0 || s != 0 {
		t.Fatalf("the member counts %v watchers on %v streams before the shim starts", w, s)
	}
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	shimMetrics := shim.URL + "/metrics/shim"
	hits := func() float64 {
		_, _, values := textPage(t, shimMetrics)
		v, _ := strconv.ParseFloat(values[`etcdshim_v2_read_cache_reads_total{result="hit"}`], 64)
		return v
	}
	get := func() {
		resp, err := http.Get(shim.URL + "/v2/keys/one?recursive=true")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"key":"/one/k"`) {
			t.Fatalf("GET /one: %d %s", resp.StatusCode, b)
		}
	}
	v2do(t, shim.URL, "PUT", "/one/k", "value=0")
	// The first GET starts the cache; wait until GETs come from it.
	deadline := time.Now().Add(30 * time.Second)
	for h := hits(); ; {
		get()
		if hits() > h {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the read cache never answered a GET")
		}
		time.Sleep(50 * time.Millisecond)
	}

	const polls, reads = 50, 200
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: polls}, Timeout: 60 * time.Second}
	// Each long poll reports once: nil when its headers arrived (it
	// waits), else why not; then its body.
	ready, bodies := make(chan error, polls), make(chan string, polls)
	for i := 0; i < polls; i++ {
		go func() {
			resp, err := client.Get(fmt.Sprintf("%s/v2/keys/one/k?wait=true&recursive=%v", shim.URL, i%2 == 0))
			ready <- err
			if err != nil {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies <- string(b)
		}()
	}
	for i := 0; i < polls; i++ {
		if err := <-ready; err != nil {
			t.Fatalf("long poll %d: %v", i, err)
		}
	}
	waitRegistered(t, shim.URL, polls)
	before := hits()
	for i := 0; i < reads; i++ {
		get()
	}
	if got := hits() - before; got != reads {
		t.Fatalf("%v of %d GETs came from the read cache", got, reads)
	}
	if w, s := memberWatches(); w != 1 || s != 1 {
		t.Fatalf("with %d long polls waiting and %d cached GETs served the member counts %v watchers on %v watch streams, want 1 on 1 (the shim's follower)",
			polls, reads, w, s)
	}
	v2do(t, shim.URL, "PUT", "/one/k", "value=wake")
	for i := 0; i < polls; i++ {
		select {
		case b := <-bodies:
			if !strings.Contains(b, `"value":"wake"`) {
				t.Fatalf("long poll %d woke with %s", i, b)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%d of %d long polls woke", i, polls)
		}
	}
}

// TestV2WatchSurvivesMemberRestart: chained waitIndex long polls see every
// write in order while the member behind the shim restarts.
func TestV2WatchSurvivesMemberRestart(t *testing.T) {
	e2eParallel(t)
	cl, shim := startV2Shim(t)
	first := strings.Fields(v2do(t, shim.URL, "PUT", "/rs/k", "value=start"))[0]
	next, _ := strconv.ParseUint(first, 10, 64)
	next++
	seen := make(chan uint64, 1000)
	stop := make(chan struct{})
	go func() {
		defer close(seen)
		client := &http.Client{Timeout: 30 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get(fmt.Sprintf("%s/v2/keys/rs/k?wait=true&waitIndex=%d", shim.URL, next))
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			var ev struct {
				ErrorCode int `json:"errorCode"`
				Node      struct {
					ModifiedIndex uint64 `json:"modifiedIndex"`
				} `json:"node"`
			}
			err = json.NewDecoder(resp.Body).Decode(&ev)
			resp.Body.Close()
			if err != nil || ev.Node.ModifiedIndex == 0 {
				switch ev.ErrorCode {
				case 0:
				case 300:
					// The member is down: v2 clients retry 5xx answers.
					time.Sleep(100 * time.Millisecond)
				default:
					t.Errorf("watch error %d", ev.ErrorCode)
					return
				}
				continue
			}
			seen <- ev.Node.ModifiedIndex
			next = ev.Node.ModifiedIndex + 1
		}
	}()
	var acked []uint64
	write := func(i int) {
		for {
			out := v2do(t, shim.URL, "PUT", "/rs/k", fmt.Sprintf("value=%d", i))
			if strings.Contains(out, `"action":"set"`) {
				idx, _ := strconv.ParseUint(strings.Fields(out)[0], 10, 64)
				acked = append(acked, idx)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i := 0; i < 20; i++ {
		write(i)
	}
	cl.Members[0].Stop(t)
	cl.Members[0].Start(t)
	cl.Members[0].WaitHealthy(t)
	for i := 20; i < 40; i++ {
		write(i)
	}
	var got []uint64
	timeout := time.After(30 * time.Second)
	for len(got) < len(acked) {
		select {
		case idx, ok := <-seen:
			if !ok {
				t.Fatalf("watcher stopped after %d of %d events", len(got), len(acked))
			}
			got = append(got, idx)
		case <-timeout:
			t.Fatalf("watcher saw %d of %d acknowledged writes: %v vs %v", len(got), len(acked), got, acked)
		}
	}
	close(stop)
	for i := range acked {
		if got[i] != acked[i] {
			t.Fatalf("event %d: watcher saw index %d, write was acknowledged at %d", i, got[i], acked[i])
		}
	}
}

// TestV2WatchEtcdctl: etcd 3.4's v2 etcdctl watch --after-index through the
// shim.
func TestV2WatchEtcdctl(t *testing.T) {
	e2eParallel(t)
	_, shim := startV2Shim(t)
	idx := strings.Fields(v2do(t, shim.URL, "PUT", "/ew/k", "value=old"))[0]
	v2do(t, shim.URL, "PUT", "/ew/k", "value=new")
	if got := etcdctl2(t, shim.URL, "watch", "--after-index", idx, "/ew/k"); got != "new" {
		t.Fatalf("watch --after-index: %q", got)
	}
	// watch --forever and exec-watch: v2watch_clients_test.go.
}
