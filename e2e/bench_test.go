//go:build bench

package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The benchmark suite (make bench): each comparison runs its arms side by
// side in one run, alternating them round by round, and writes ratio tables
// into BENCHMARKS.md between the bench markers. BENCH_QUICK=1 shortens it.

func benchDur() time.Duration {
	if os.Getenv("BENCH_QUICK") != "" {
		return 2 * time.Second
	}
	return 5 * time.Second
}

func benchRounds() int {
	if os.Getenv("BENCH_QUICK") != "" {
		return 2
	}
	return 3
}

type sample struct {
	ops     int
	elapsed time.Duration
	lat     []time.Duration
	// fromHey: lat holds hey's p50 and p99 rather than every latency.
	fromHey bool
}

func (s sample) qps() float64 { return float64(s.ops) / s.elapsed.Seconds() }

func pct(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[int(float64(len(lat)-1)*p)]
}

// splice is a bare TCP relay: the floor any proxy is measured against.
func splice(t *testing.T, target string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				u, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
				c.Close()
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func procHWM(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "?"
}

// runV3 drives one workload with clients goroutines over conns connections.
func runV3(t *testing.T, ep, workload string, clients int) sample {
	conns := min(clients, 16)
	cs := make([]*clientv3.Client, conns)
	for i := range cs {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	val := strings.Repeat("v", 256)
	var ops atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), benchDur())
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(c *clientv3.Client, seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			var local []time.Duration
			for ctx.Err() == nil {
				key := fmt.Sprintf("bench/%05d", r.Intn(10000))
				t0 := time.Now()
				var err error
				switch workload {
				case "put":
					_, err = c.Put(ctx, key, val)
				case "range":
					_, err = c.Get(ctx, key)
				case "range-serializable":
					_, err = c.Get(ctx, key, clientv3.WithSerializable())
				case "txn-put":
					_, err = c.Txn(ctx).If(clientv3.Compare(clientv3.Version(key), "<", 1<<40)).Then(clientv3.OpPut(key, val)).Commit()
				}
				if err == nil {
					ops.Add(1)
					local = append(local, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}(cs[i%conns], int64(i))
	}
	wg.Wait()
	return sample{ops: int(ops.Load()), elapsed: time.Since(start), lat: lat}
}

var heyRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
var heyPct = regexp.MustCompile(`(\d+)%+ in ([0-9.]+) secs`)

// runHey runs hey and reads throughput and p50/p99.
func runHey(t *testing.T, args ...string) sample {
	out, err := exec.Command("/usr/bin/hey", append([]string{"-z", benchDur().String()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("hey: %v %s", err, out)
	}
	m := heyRPS.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("hey output: %s", out)
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	s := sample{ops: int(rps * benchDur().Seconds()), elapsed: benchDur(), fromHey: true}
	for _, p := range heyPct.FindAllStringSubmatch(string(out), -1) {
		secs, _ := strconv.ParseFloat(p[2], 64)
		d := time.Duration(secs * float64(time.Second))
		switch p[1] {
		case "50":
			s.lat = append(s.lat, d)
		case "99":
			s.lat = append(s.lat, d)
		}
	}
	return s
}

type arm struct {
	name string
	run  func() sample
	pid  int // shim process, for CPU accounting
}

type result struct {
	qps      []float64
	p50, p99 []time.Duration
	cpu      float64
	ops      int
}

// alternate runs the arms round-robin and aggregates per arm (median qps).
func alternate(arms []arm) map[string]*result {
	res := map[string]*result{}
	for r := 0; r < benchRounds(); r++ {
		for _, a := range arms {
			cpu0 := 0.0
			if a.pid != 0 {
				cpu0 = procCPU(a.pid)
			}
			s := a.run()
			if res[a.name] == nil {
				res[a.name] = &result{}
			}
			x := res[a.name]
			x.qps = append(x.qps, s.qps())
			if s.fromHey && len(s.lat) == 2 {
				x.p50 = append(x.p50, s.lat[0])
				x.p99 = append(x.p99, s.lat[1])
			} else {
				x.p50 = append(x.p50, pct(s.lat, 0.50))
				x.p99 = append(x.p99, pct(s.lat, 0.99))
			}
			if a.pid != 0 {
				x.cpu += procCPU(a.pid) - cpu0
				x.ops += s.ops
			}
		}
	}
	return res
}

func median[T float64 | time.Duration](v []T) T {
	s := append([]T(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func table(title, cmd string, base string, order []string, res map[string]*result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### %s\n\n`%s`\n\n| arm | req/s | ratio to %s | p50 | p99 | p99 added | shim CPU s / 100k req |\n|---|---|---|---|---|---|---|\n", title, cmd, base)
	bq, bp99 := median(res[base].qps), median(res[base].p99)
	for _, name := range order {
		r := res[name]
		if r == nil {
			continue
		}
		cpu := "—"
		if r.ops > 0 {
			cpu = fmt.Sprintf("%.2f", r.cpu/float64(r.ops)*100000)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.2f× | %v | %v | %v | %s |\n", name, median(r.qps), median(r.qps)/bq,
			median(r.p50).Round(10*time.Microsecond), median(r.p99).Round(10*time.Microsecond),
			(median(r.p99) - bp99).Round(10*time.Microsecond), cpu)
	}
	return b.String()
}

func TestBench(t *testing.T) {
	var out strings.Builder
	fmt.Fprintf(&out, "Run %s on %d cores, %d alternating rounds of %v per arm.\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtimeCPUs(), benchRounds(), benchDur())

	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1, ExtraArgs: []string{"--quota-backend-bytes", "8589934592"}})
	member := cl.ClientURLs()[0]
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: []string{"--log-level", "warn"}})
	sp := splice(t, strings.TrimPrefix(member, "http://"))
	gpPort := harness.FreePort(t)
	gp := exec.Command(harness.EtcdBinary(t, "3.7"), "grpc-proxy", "start", "--endpoints", member,
		"--listen-addr", fmt.Sprintf("127.0.0.1:%d", gpPort))
	if err := gp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gp.Process.Kill(); _ = gp.Wait() })
	grpcProxy := fmt.Sprintf("http://127.0.0.1:%d", gpPort)
	time.Sleep(time.Second)

	order := []string{"direct", "bare splice", "etcdshim", "etcd grpc-proxy"}
	for _, wl := range []string{"put", "range", "range-serializable", "txn-put"} {
		for _, clients := range []int{100} {
			arms := []arm{
				{name: "direct", run: func() sample { return runV3(t, member, wl, clients) }},
				{name: "bare splice", run: func() sample { return runV3(t, sp, wl, clients) }},
				{name: "etcdshim", run: func() sample { return runV3(t, shim.URL, wl, clients) }, pid: shim.PID()},
				{name: "etcd grpc-proxy", run: func() sample { return runV3(t, grpcProxy, wl, clients) }},
			}
			out.WriteString(table(fmt.Sprintf("v3 gRPC %s, %d clients", wl, clients),
				fmt.Sprintf("BENCH_ONLY=v3 make bench (clientv3, 16 connections, %d goroutines)", clients), "direct", order, alternate(arms)))
		}
	}
	var scale strings.Builder
	scale.WriteString("\n### v3 gRPC put: how the shim's cost grows with clients\n\n| clients | direct req/s | shim req/s | ratio | p99 direct | p99 shim |\n|---|---|---|---|---|---|\n")
	for _, clients := range []int{1, 10, 100, 1000} {
		res := alternate([]arm{
			{name: "direct", run: func() sample { return runV3(t, member, "put", clients) }},
			{name: "etcdshim", run: func() sample { return runV3(t, shim.URL, "put", clients) }, pid: shim.PID()},
		})
		d, s := res["direct"], res["etcdshim"]
		fmt.Fprintf(&scale, "| %d | %.0f | %.0f | %.2f× | %v | %v |\n", clients, median(d.qps), median(s.qps), median(s.qps)/median(d.qps),
			median(d.p99).Round(10*time.Microsecond), median(s.p99).Round(10*time.Microsecond))
	}
	fmt.Fprintf(&scale, "\nShim peak RSS (VmHWM) after the 1,000-client run: %s.\n", procHWM(shim.PID()))
	out.WriteString(scale.String())

	// JSON gateway: the shim's /v3beta against the member's own /v3, with a
	// bare splice to the member's gateway as the floor.
	body := `{"key":"YmVuY2gvMDAwMDE="}`
	gw := alternate([]arm{
		{name: "member /v3 gateway", run: func() sample {
			return runHey(t, "-c", "50", "-m", "POST", "-d", body, member+"/v3/kv/range")
		}},
		{name: "bare splice → member /v3", run: func() sample {
			return runHey(t, "-c", "50", "-m", "POST", "-d", body, sp+"/v3/kv/range")
		}},
		{name: "etcdshim /v3beta", run: func() sample {
			return runHey(t, "-c", "50", "-m", "POST", "-d", body, shim.URL+"/v3beta/kv/range")
		}, pid: shim.PID()},
	})
	out.WriteString(table("JSON gateway POST kv/range, 50 connections", "hey -c 50 -m POST -d '{\"key\":…}' <url>/kv/range", "member /v3 gateway", []string{"member /v3 gateway", "bare splice → member /v3", "etcdshim /v3beta"}, gw))
	gwPut := alternate([]arm{
		{name: "member /v3 gateway", run: func() sample {
			return runHey(t, "-c", "50", "-m", "POST", "-d", `{"key":"Z3A=","value":"dg=="}`, member+"/v3/kv/put")
		}},
		{name: "etcdshim /v3beta", run: func() sample {
			return runHey(t, "-c", "50", "-m", "POST", "-d", `{"key":"Z3A=","value":"dg=="}`, shim.URL+"/v3beta/kv/put")
		}, pid: shim.PID()},
	})
	out.WriteString(table("JSON gateway POST kv/put, 50 connections", "hey -c 50 -m POST -d '{\"key\":…,\"value\":…}' <url>/kv/put", "member /v3 gateway", []string{"member /v3 gateway", "etcdshim /v3beta"}, gwPut))

	// v2: the shim on 3.7 against etcd 3.4's native v2.
	v34 := harness.StartCluster(t, harness.ClusterConfig{Version: "3.4", Size: 1, EnableV2: true})
	native := v34.ClientURLs()[0]
	nativeSplice := splice(t, strings.TrimPrefix(native, "http://"))
	for _, u := range []string{native, shim.URL} {
		v2do(t, u, "PUT", "/bench/k", "value=x")
	}
	v2 := func(name, method, path, form string) {
		mk := func(u string) func() sample {
			return func() sample {
				args := []string{"-c", "50", "-m", method}
				if form != "" {
					args = append(args, "-T", "application/x-www-form-urlencoded", "-d", form)
				}
				return runHey(t, append(args, u+"/v2/keys"+path)...)
			}
		}
		res := alternate([]arm{
			{name: "etcd 3.4 native v2", run: mk(native)},
			{name: "bare splice → 3.4 native v2", run: mk(nativeSplice)},
			{name: "etcdshim on 3.7", run: mk(shim.URL), pid: shim.PID()},
		})
		out.WriteString(table("v2 "+name+", 50 connections", fmt.Sprintf("hey -c 50 -m %s %s <url>/v2/keys%s", method, form, path),
			"etcd 3.4 native v2", []string{"etcd 3.4 native v2", "bare splice → 3.4 native v2", "etcdshim on 3.7"}, res))
	}
	v2("GET", "GET", "/bench/k", "")
	v2("PUT", "PUT", "/bench/k", "value=x")
	v2("CAS (prevValue)", "PUT", "/bench/k", "value=x&prevValue=x")

	// metrics: a scrape through the shim against the member's own page.
	mres := alternate([]arm{
		{name: "member /metrics", run: func() sample { return runHey(t, "-c", "1", member+"/metrics") }},
		{name: "bare splice → member /metrics", run: func() sample { return runHey(t, "-c", "1", sp+"/metrics") }},
		{name: "etcdshim /metrics", run: func() sample { return runHey(t, "-c", "1", shim.URL+"/metrics") }, pid: shim.PID()},
	})
	out.WriteString(table("metrics scrape, one scraper", "hey -c 1 <url>/metrics", "member /metrics", []string{"member /metrics", "bare splice → member /metrics", "etcdshim /metrics"}, mres))

	writeBench(t, out.String())
}

func runtimeCPUs() int {
	n := 0
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "processor") {
			n++
		}
	}
	return n
}

func writeBench(t *testing.T, tables string) {
	path := filepath.Join(harness.RepoRoot(), "BENCHMARKS.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("BENCHMARKS.md lacks the %s/%s markers", begin, end)
	}
	s = s[:i+len(begin)] + "\n" + tables + "\n" + s[j:]
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log(tables)
}
