//go:build bench

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/gorilla/websocket"
)

// wsBenchSockets is how many websocket watches each arm holds open.
const wsBenchSockets = 1000

// gaugeSet reads gauges from a Prometheus text page.
func gaugeSet(t *testing.T, url string, names ...string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && want[f[0]] {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
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
