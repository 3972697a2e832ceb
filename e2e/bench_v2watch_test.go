//go:build bench

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// v2WatchSection compares v2 long polls on the shim (on 3.7) with etcd
// 3.4's native v2: how fast one write wakes one waiter, and what 10,000
// waiting long polls cost in memory and wake-up time.
func v2WatchSection(t *testing.T, out *strings.Builder, v34, v37 *harness.Cluster, shim *harness.Shim) {
	native := v34.ClientURLs()[0]
	iterations := 200
	if os.Getenv("BENCH_QUICK") != "" {
		iterations = 50
	}
	res := alternate([]arm{
		{name: "etcd 3.4 native v2", run: func() sample { return wakeLoop(t, native, iterations) }},
		{name: "etcdshim on 3.7", run: func() sample { return wakeLoop(t, shim.URL, iterations) }, pid: shim.PID()},
	})
	out.WriteString(latencyTable("v2 watch wake-up, one long poll", fmt.Sprintf("%s (GET ?wait=true&waitIndex=N, then PUT; time from the PUT to the event, %d times per round)",
		rerun("v2watch"), iterations), "etcd 3.4 native v2", []string{"etcd 3.4 native v2", "etcdshim on 3.7"}, "wake-ups", res))

	const n = 10000
	fmt.Fprintf(out, "\n### v2 watch: %d concurrent long polls on one key, one write\n\n`%s`\n\n", n, rerun("v2watch"))
	out.WriteString("| server | RSS per 1,000 waiters | wake-up p50 | wake-up p99 | last waiter woke | woken | member watchers added |\n|---|---|---|---|---|---|---|\n")
	for _, c := range []struct {
		name, url string
		pid       int
		member    string
	}{
		{"etcd 3.4 native v2", native, v34.Members[0].PID(), ""},
		{"etcdshim on 3.7", shim.URL, shim.PID(), v37.ClientURLs()[0]},
	} {
		r := manyWaiters(t, c.url, c.pid, c.member, n)
		added := "—"
		if c.member != "" {
			added = fmt.Sprintf("%.0f", r.watchersAdded)
		}
		fmt.Fprintf(out, "| %s | %.0f kB | %v | %v | %v | %d of %d | %s |\n", c.name, r.rssPer1000KB,
			r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.last.Round(time.Millisecond), r.woken, n, added)
		if r.woken != n {
			t.Errorf("%s: %d of %d waiters woke", c.name, r.woken, n)
		}
		if c.member != "" && r.watchersAdded > 2 {
			t.Errorf("%s: the member's watchers grew by %v for %d long polls", c.name, r.watchersAdded, n)
		}
	}
	out.WriteString("\nRSS is the serving process's resident memory with the waiters registered minus before, per 1,000; for the shim, the\n" +
		"member's watcher count (`etcd_debugging_mvcc_watcher_total`) shows the long polls cost it nothing.\n")
}

// wakeLoop registers a long poll, writes, and times the write until the
// waiter has its event, iterations times.
func wakeLoop(t *testing.T, base string, iterations int) sample {
	client := &http.Client{Timeout: 30 * time.Second}
	idx, _ := strconv.ParseUint(strings.Fields(v2do(t, base, "PUT", "/bw/k", "value=0"))[0], 10, 64)
	var lat []time.Duration
	start := time.Now()
	for i := 0; i < iterations; i++ {
		resp, err := client.Get(fmt.Sprintf("%s/v2/keys/bw/k?wait=true&waitIndex=%d", base, idx+1))
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		w := strings.Fields(v2do(t, base, "PUT", "/bw/k", "value="+strconv.Itoa(i)))
		_, _ = io.ReadAll(resp.Body)
		lat = append(lat, time.Since(t0))
		resp.Body.Close()
		idx, _ = strconv.ParseUint(w[0], 10, 64)
	}
	return sample{ops: iterations, elapsed: time.Since(start), lat: lat}
}

type waitersResult struct {
	rssPer1000KB  float64
	p50, p99      time.Duration
	last          time.Duration
	woken         int
	watchersAdded float64
}

// manyWaiters opens n long polls on one key (their headers arrive at
// registration), measures the serving process's memory, then writes once
// and times every waiter's wake-up.
func manyWaiters(t *testing.T, base string, pid int, member string, n int) waitersResult {
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	idx, _ := strconv.ParseUint(strings.Fields(v2do(t, base, "PUT", "/bw/many", "value=before"))[0], 10, 64)
	var watchersBefore float64
	if member != "" {
		watchersBefore = memberWatchers(t, member)
	}
	rssBefore := procStatusKB(pid, "VmRSS")
	var wg sync.WaitGroup
	registered := make(chan struct{}, n)
	bodies := make(chan io.ReadCloser, n)
	dial := make(chan struct{}, 200) // at most this many registrations in flight
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dial <- struct{}{}
			resp, err := client.Get(fmt.Sprintf("%s/v2/keys/bw/many?wait=true&waitIndex=%d", base, idx+1))
			<-dial
			if err != nil {
				t.Errorf("long poll: %v", err)
				registered <- struct{}{}
				return
			}
			bodies <- resp.Body
			registered <- struct{}{}
		}()
	}
	for i := 0; i < n; i++ {
		<-registered
	}
	wg.Wait()
	close(bodies)
	time.Sleep(500 * time.Millisecond) // let the server settle its buffers
	res := waitersResult{rssPer1000KB: float64(procStatusKB(pid, "VmRSS")-rssBefore) / float64(n) * 1000}
	if member != "" {
		res.watchersAdded = memberWatchers(t, member) - watchersBefore
	}
	var mu sync.Mutex
	var lat []time.Duration
	t0 := time.Now()
	for b := range bodies {
		wg.Add(1)
		go func(b io.ReadCloser) {
			defer wg.Done()
			defer b.Close()
			data, _ := io.ReadAll(b)
			d := time.Since(t0)
			if strings.Contains(string(data), `"value":"wake"`) {
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}(b)
	}
	v2do(t, base, "PUT", "/bw/many", "value=wake")
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res.woken = len(lat)
	if len(lat) > 0 {
		res.p50, res.p99, res.last = pct(lat, 0.5), pct(lat, 0.99), lat[len(lat)-1]
	}
	return res
}

func memberWatchers(t *testing.T, member string) float64 {
	v, _ := scrapeValue(t, member+"/metrics", "etcd_debugging_mvcc_watcher_total")
	return v
}
