//go:build bench

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
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
