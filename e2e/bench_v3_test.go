//go:build bench

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/gorilla/websocket"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var toolTotal = regexp.MustCompile(`Total:\s+([0-9.]+) secs`)

// runTool runs etcd's benchmark tool against ep and reads its summary
// (the same "Requests/sec" and "N% in X secs" lines hey prints). For
// watch-latency only the watch events summary counts.
func runTool(t *testing.T, tool, ep string, clients int, args ...string) sample {
	conns := min(clients, 16)
	full := append([]string{"--endpoints", strings.TrimPrefix(ep, "http://"), "--conns", strconv.Itoa(conns),
		"--clients", strconv.Itoa(clients), "--precise"}, args...)
	cmd := exec.Command(tool, full...)
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("benchmark %v: %v\n%s", full, err, out)
	}
	if i := strings.Index(out, "Watch events summary"); i >= 0 {
		out = out[i:]
	}
	m, tm := heyRPS.FindStringSubmatch(out), toolTotal.FindStringSubmatch(out)
	if m == nil || tm == nil {
		t.Fatalf("benchmark output: %s", out)
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	secs, _ := strconv.ParseFloat(tm[1], 64)
	s := sample{ops: int(rps * secs), elapsed: time.Duration(secs * float64(time.Second)), fromHey: true, loadCPU: childCPU(cmd)}
	for _, p := range heyPct.FindAllStringSubmatch(out, -1) {
		if p[1] == "50" || p[1] == "99" {
			v, _ := strconv.ParseFloat(p[2], 64)
			s.lat = append(s.lat, time.Duration(v*float64(time.Second)))
		}
	}
	return s
}

// v3Args are etcd benchmark arguments sized so one arm runs for about
// benchDur at the rates this machine reaches.
func v3Args(workload string, rate float64) []string {
	total := strconv.Itoa(int(rate * benchDur().Seconds()))
	switch workload {
	case "put":
		return []string{"put", "--total", total, "--key-size", "8", "--key-space-size", "10000", "--val-size", "256"}
	case "range":
		return []string{"range", "/bench-range", "--total", total, "--consistency", "l"}
	case "range-serializable":
		return []string{"range", "/bench-range", "--total", total, "--consistency", "s"}
	case "txn-put":
		return []string{"txn-put", "--total", total, "--key-size", "8", "--key-space-size", "10000", "--val-size", "256"}
	}
	panic("unknown workload " + workload)
}

func v3Sections(t *testing.T, out *strings.Builder, tool, member, sp string, shim *harness.Shim, grpcProxy string) {
	order := []string{"direct", "bare splice", "etcdshim", "etcd grpc-proxy"}
	rates := map[string]float64{"put": 7000, "range": 9000, "range-serializable": 9000, "txn-put": 6000}
	if benchOn("v3") {
		for _, wl := range []string{"put", "range", "range-serializable", "txn-put"} {
			args := v3Args(wl, rates[wl])
			arms := []arm{
				{name: "direct", run: func() sample { return runTool(t, tool, member, 100, args...) }},
				{name: "bare splice", run: func() sample { return runTool(t, tool, sp, 100, args...) }},
				{name: "etcdshim", run: func() sample { return runTool(t, tool, shim.URL, 100, args...) }, pid: shim.PID()},
				{name: "etcd grpc-proxy", run: func() sample { return runTool(t, tool, grpcProxy, 100, args...) }},
			}
			out.WriteString(table(fmt.Sprintf("v3 gRPC %s, 100 clients", wl),
				fmt.Sprintf("%s (etcd benchmark --conns 16 --clients 100 %s)", rerun("v3"), strings.Join(args, " ")),
				"direct", order, alternate(arms)))
		}
	}
	if benchOn("v3") || benchOn("proxycache") {
		out.WriteString(proxyCacheStaleness(t, member, shim.URL, grpcProxy))
	}
	if benchOn("watch") {
		args := []string{"watch-latency", "--put-total", strconv.Itoa(int(500 * benchDur().Seconds())), "--put-rate", "500",
			"--streams", "10", "--watchers-per-stream", "10", "--val-size", "256"}
		res := alternate([]arm{
			{name: "direct", run: func() sample { return runTool(t, tool, member, 10, args...) }},
			{name: "bare splice", run: func() sample { return runTool(t, tool, sp, 10, args...) }},
			{name: "etcdshim", run: func() sample { return runTool(t, tool, shim.URL, 10, args...) }, pid: shim.PID()},
			{name: "etcd grpc-proxy", run: func() sample { return runTool(t, tool, grpcProxy, 10, args...) }},
		})
		out.WriteString(latencyTable("v3 watch latency: 100 watchers, 500 puts/s", fmt.Sprintf("%s (etcd benchmark --conns 10 --clients 10 %s)",
			rerun("watch"), strings.Join(args, " ")), "direct", order, "events", res))
	}
	if benchOn("scale") {
		var scale strings.Builder
		fmt.Fprintf(&scale, "\n### v3 gRPC put: how the shim's cost grows with clients\n\n`%s (etcd benchmark put, as above, --clients N)`\n\n"+
			"| clients | direct req/s | shim req/s | ratio | p99 direct | p99 shim | shim CPU s / 100k req |\n|---|---|---|---|---|---|---|\n", rerun("scale"))
		for _, c := range []struct {
			clients int
			rate    float64
		}{{1, 1000}, {10, 3500}, {100, 7000}, {1000, 10000}} {
			args := v3Args("put", c.rate)
			res := alternate([]arm{
				{name: "direct", run: func() sample { return runTool(t, tool, member, c.clients, args...) }},
				{name: "etcdshim", run: func() sample { return runTool(t, tool, shim.URL, c.clients, args...) }, pid: shim.PID()},
			})
			d, s := res["direct"], res["etcdshim"]
			fmt.Fprintf(&scale, "| %d | %.0f | %.0f | %.2f× | %v | %v | %s |\n", c.clients, median(d.qps), median(s.qps), median(s.qps)/median(d.qps),
				median(d.p99).Round(10*time.Microsecond), median(s.p99).Round(10*time.Microsecond), cpuPer100k(s))
		}
		fmt.Fprintf(&scale, "\nShim peak RSS (VmHWM) after the 1,000-client run: %s.\n", fmt.Sprintf("%d kB", procStatusKB(shim.PID(), "VmHWM")))
		out.WriteString(scale.String())
	}
}

// latencyTable is table without a throughput column, for workloads whose
// rate the benchmark sets itself.
func latencyTable(title, cmd, base string, order []string, unit string, res map[string]*result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### %s\n\n`%s`\n\n| arm | p50 | p99 | p99 added | shim CPU s / 100k %s |\n|---|---|---|---|---|\n", title, cmd, unit)
	bp99 := median(res[base].p99)
	for _, name := range order {
		r := res[name]
		if r == nil {
			continue
		}
		fmt.Fprintf(&b, "| %s | %v | %v | %v | %s |\n", name, median(r.p50).Round(time.Microsecond),
			median(r.p99).Round(time.Microsecond), (median(r.p99) - bp99).Round(time.Microsecond), cpuPer100k(r))
	}
	return b.String()
}

// proxyCacheStaleness shows what grpc-proxy's lead on serializable ranges
// is made of: it answers them from a cache that only writes through the
// proxy itself invalidate. A value is read through both proxies, changed
// directly on the member (as another member's clients change it), and read
// again a second later.
func proxyCacheStaleness(t *testing.T, member, shim, grpcProxy string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	direct, viaShim, viaProxy := newClient(t, member), newClient(t, shim), newClient(t, grpcProxy)
	const key = "/bench-proxy-cache"
	read := func(c *clientv3.Client) string {
		r, err := c.Get(ctx, key, clientv3.WithSerializable())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) == 0 {
			return "(none)"
		}
		return string(r.Kvs[0].Value)
	}
	if _, err := viaProxy.Put(ctx, key, "old"); err != nil {
		t.Fatal(err)
	}
	read(viaProxy)
	read(viaShim)
	if _, err := direct.Put(ctx, key, "new"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	return fmt.Sprintf("\nSerializable reads after a write that bypassed the proxies (`%s`: put \"old\" and read through each proxy, "+
		"put \"new\" directly on the member, read again 1 s later): the member answers %q, etcdshim %q, etcd grpc-proxy %q.\n",
		rerun("proxycache"), read(direct), read(viaShim), read(viaProxy))
}

// wsBenchSockets is how many websocket watches each arm holds open.
const wsBenchSockets = 1000

// gaugeSet reads unlabelled gauges from a Prometheus text page (absent: 0).
func gaugeSet(t *testing.T, url string, names ...string) map[string]float64 {
	t.Helper()
	_, _, values := textPage(t, url)
	out := map[string]float64{}
	for _, n := range names {
		out[n], _ = strconv.ParseFloat(values[n], 64)
	}
	return out
}

// wsProcess is one process whose cost an arm measures.
type wsProcess struct {
	name, metricsURL, pprofURL string
	pid                        int
}

// sample forces a collection first (a heap profile with gc=1), so the heap
// figure is the live heap, not whatever the collector had not yet freed.
func (p wsProcess) sample(t *testing.T) (goroutines, heapKB, stackKB, rssKB float64) {
	resp, err := http.Get(p.pprofURL + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	g := gaugeSet(t, p.metricsURL, "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes")
	return g["go_goroutines"], g["go_memstats_heap_inuse_bytes"] / 1024, g["go_memstats_stack_inuse_bytes"] / 1024,
		float64(procStatusKB(p.pid, "VmRSS"))
}

// memberWatchState is the member's watcher and watch-stream gauges (3.7
// still names them etcd_debugging_mvcc_*; later releases drop "debugging").
func memberWatchState(t *testing.T, member string) (watchers, streams float64) {
	g := gaugeSet(t, member+"/metrics", "etcd_debugging_mvcc_watcher_total", "etcd_mvcc_watcher_total",
		"etcd_debugging_mvcc_watch_stream_total", "etcd_mvcc_watch_stream_total")
	return g["etcd_debugging_mvcc_watcher_total"] + g["etcd_mvcc_watcher_total"],
		g["etcd_debugging_mvcc_watch_stream_total"] + g["etcd_mvcc_watch_stream_total"]
}

// gatewayWSSection: 1,000 websocket watches (one watch per socket, idle
// after its created frame) through the member's own gateway and through the
// shim's, one arm after the other, each arm on a fresh member (and shim) so
// that no arm reuses memory an earlier one freed; the cost is what each
// process gained.
func gatewayWSSection(t *testing.T, out *strings.Builder) {
	type row struct {
		arm                                  string
		procs                                []wsProcess
		dG, dHeap, dStack, dRSS              []float64
		watchers, streams, left, leftStreams float64
		open                                 time.Duration
	}
	var rows []row
	for _, a := range []struct {
		name, prefix string
		viaShim      bool
	}{
		{"member's own gateway (3.7, /v3/watch)", "/v3", false},
		{"etcdshim /v3/watch → 3.7", "/v3", true},
		{"etcdshim /v3beta/watch → 3.7", "/v3beta", true},
	} {
		cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", ExtraArgs: []string{"--enable-pprof"}})
		member := cl.ClientURLs()[0]
		memberProc := wsProcess{"member", member + "/metrics", member, cl.Members[0].PID()}
		procs, prefix := []wsProcess{memberProc}, member+a.prefix
		var shim *harness.Shim
		if a.viaShim {
			shim = harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: []string{"--log-level", "warn", "--enable-pprof"}})
			procs = []wsProcess{{"etcdshim", shim.URL + "/metrics/shim", shim.URL, shim.PID()}, memberProc}
			prefix = shim.URL + a.prefix
		}
		w0, s0 := memberWatchState(t, member)
		time.Sleep(2 * time.Second) // past start-up
		r := row{arm: a.name, procs: procs}
		before := make([][4]float64, len(procs))
		for i, p := range procs {
			g, h, st, rss := p.sample(t)
			before[i] = [4]float64{g, h, st, rss}
		}
		start := time.Now()
		conns := make([]*websocket.Conn, 0, wsBenchSockets)
		for i := 0; i < wsBenchSockets; i++ {
			c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(prefix, "http")+"/watch", nil)
			if err != nil {
				t.Fatalf("%s: socket %d: %v", a.name, i, err)
			}
			msg := fmt.Sprintf(`{"create_request":{"key":%q}}`, b64s(fmt.Sprintf("wsbench/%d", i)))
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, b, err := c.ReadMessage(); err != nil || !strings.Contains(string(b), `"created":true`) {
				t.Fatalf("%s: watch %d: %v %s", a.name, i, err, b)
			}
			conns = append(conns, c)
		}
		r.open = time.Since(start)
		time.Sleep(3 * time.Second) // let both sides settle (idle timers, pools)
		for i, p := range procs {
			g, h, st, rss := p.sample(t)
			r.dG = append(r.dG, g-before[i][0])
			r.dHeap = append(r.dHeap, h-before[i][1])
			r.dStack = append(r.dStack, st-before[i][2])
			r.dRSS = append(r.dRSS, rss-before[i][3])
		}
		w1, s1 := memberWatchState(t, member)
		r.watchers, r.streams = w1-w0, s1-s0
		if r.watchers != wsBenchSockets {
			t.Errorf("%s: the member holds %v more watchers for %d sockets", a.name, r.watchers, wsBenchSockets)
		}
		for _, c := range conns {
			_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			c.Close()
		}
		for i := 0; i < 100; i++ {
			if w, _ := memberWatchState(t, member); w == w0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		w2, s2 := memberWatchState(t, member)
		r.left, r.leftStreams = w2-w0, s2-s0
		rows = append(rows, r)
		if shim != nil {
			shim.Stop(t)
		}
		cl.Members[0].Stop(t)
	}
	fmt.Fprintf(out, "\n### JSON gateway: %d websocket watches held open\n\n`%s` (%d sockets, one watch each, opened one after another and left idle after their created frame; each arm on a fresh 3.7 member and shim; deltas per process between before opening and 3 s after the last one opened, heap read after a forced collection)\n\n",
		wsBenchSockets, rerun("gatewayws"), wsBenchSockets)
	out.WriteString("| arm | process | goroutines / socket | live heap / socket | goroutine stacks / socket | RSS / socket | member watchers held | member watch streams held | left after close (watchers/streams) | time to open all |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		for i, p := range r.procs {
			arm, held, left, open := r.arm, fmt.Sprintf("%.0f", r.watchers), fmt.Sprintf("%.0f / %.0f", r.left, r.leftStreams), r.open.Round(10*time.Millisecond).String()
			streams := fmt.Sprintf("%.0f", r.streams)
			if i > 0 {
				arm, held, left, open, streams = "", "", "", "", ""
			}
			fmt.Fprintf(out, "| %s | %s | %.1f | %.1f KiB | %.1f KiB | %.1f KiB | %s | %s | %s | %s |\n", arm, p.name,
				r.dG[i]/wsBenchSockets, r.dHeap[i]/wsBenchSockets, r.dStack[i]/wsBenchSockets, r.dRSS[i]/wsBenchSockets, held, streams, left, open)
		}
	}
}
