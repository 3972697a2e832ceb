//go:build bench

package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
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

// procStatusKB reads a kB field (VmRSS, VmHWM) of /proc/<pid>/status.
func procStatusKB(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

var heyRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
var heyPct = regexp.MustCompile(`(\d+)%+ in ([0-9.]+(?:e[-+]?\d+)?) secs`)

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
	// One unrecorded run first: the first arm would otherwise pay for cold
	// caches, connection set-up and the member's first compactions.
	arms[0].run()
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
		fmt.Fprintf(&b, "| %s | %.0f | %.2f× | %v | %v | %v | %s |\n", name, median(r.qps), median(r.qps)/bq,
			median(r.p50).Round(10*time.Microsecond), median(r.p99).Round(10*time.Microsecond),
			(median(r.p99) - bp99).Round(10*time.Microsecond), cpuPer100k(r))
	}
	return b.String()
}

// cpuPer100k is the shim's CPU seconds per 100,000 operations of an arm
// ("—" for arms without a shim process).
func cpuPer100k(r *result) string {
	if r.ops == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", r.cpu/float64(r.ops)*100000)
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
