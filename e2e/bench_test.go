//go:build bench

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
	// loadCPU is the load generator's own CPU seconds (user+system).
	loadCPU float64
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

// fixedAnswer serves, for every request, the answer etcd 3.4 gave to a GET
// of url (status, headers and body), from memory: no store, no upstream.
// It is the least a Go HTTP server in a process of its own costs per GET,
// the floor under any Go sidecar's v2 GET.
func fixedAnswer(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	header := resp.Header.Clone()
	header.Del("Date")
	header.Del("Content-Length")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		for k, v := range header {
			h[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
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
	cmd := exec.Command("/usr/bin/hey", append([]string{"-z", benchDur().String()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hey: %v %s", err, out)
	}
	m := heyRPS.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("hey output: %s", out)
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	s := sample{ops: int(rps * benchDur().Seconds()), elapsed: benchDur(), fromHey: true, loadCPU: childCPU(cmd)}
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

// childCPU is a finished command's user+system CPU seconds.
func childCPU(cmd *exec.Cmd) float64 {
	if cmd.ProcessState == nil {
		return 0
	}
	return (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
}

type arm struct {
	name string
	run  func() sample
	pid  int // shim process, for the shim CPU column (counted as procs column shimColumn)
	// procs are the other server processes whose CPU a budget table splits
	// the arm's requests into (the member, etcd 3.4, the splice).
	procs []proc
}

// shimColumn is the budget column of an arm's pid, the shim.
const shimColumn = "etcdshim"

// proc is one process of an arm's CPU budget, named by its table column.
type proc struct {
	column string
	pid    int
}

type result struct {
	qps      []float64
	p50, p99 []time.Duration
	// Every round's requests, the load generator's CPU and each named
	// process's CPU over them.
	allOps  int
	elapsed time.Duration
	loadCPU float64
	procCPU map[string]float64
}

// alternate runs the arms round-robin and aggregates per arm (median qps).
func alternate(arms []arm) map[string]*result {
	res := map[string]*result{}
	// One unrecorded run first: the first arm would otherwise pay for cold
	// caches, connection set-up and the member's first compactions.
	arms[0].run()
	for r := 0; r < benchRounds(); r++ {
		for _, a := range arms {
			procs := a.procs
			if a.pid != 0 {
				procs = append([]proc{{shimColumn, a.pid}}, procs...)
			}
			before := make([]float64, len(procs))
			for i, p := range procs {
				before[i] = procCPU(p.pid)
			}
			s := a.run()
			if res[a.name] == nil {
				res[a.name] = &result{procCPU: map[string]float64{}}
			}
			x := res[a.name]
			x.allOps += s.ops
			x.elapsed += s.elapsed
			x.loadCPU += s.loadCPU
			for i, p := range procs {
				x.procCPU[p.column] += procCPU(p.pid) - before[i]
			}
			x.qps = append(x.qps, s.qps())
			if s.fromHey && len(s.lat) == 2 {
				x.p50 = append(x.p50, s.lat[0])
				x.p99 = append(x.p99, s.lat[1])
			} else {
				x.p50 = append(x.p50, pct(s.lat, 0.50))
				x.p99 = append(x.p99, pct(s.lat, 0.99))
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
	cpu, ok := r.procCPU[shimColumn]
	if !ok || r.allOps == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", cpu/float64(r.allOps)*100000)
}

// budgetTable splits each arm's CPU per request between its load generator
// and the processes in columns, and adds how many cores all of them kept busy:
// near the machine's core count, throughput is bounded by the sum, so a
// ratio target needs the sum to shrink by as much.
func budgetTable(title, cmd, load string, columns, order []string, res map[string]*result) string {
	var present []string // the columns some arm has
	for _, c := range columns {
		for _, r := range res {
			if _, ok := r.procCPU[c]; ok {
				present = append(present, c)
				break
			}
		}
	}
	columns = present
	var b strings.Builder
	fmt.Fprintf(&b, "\n### %s\n\n`%s`\n\n| arm | req/s | %s µs/req |", title, cmd, load)
	for _, c := range columns {
		fmt.Fprintf(&b, " %s µs/req |", c)
	}
	b.WriteString(" total µs/req | cores busy |\n|---|---|---|")
	b.WriteString(strings.Repeat("---|", len(columns)+2) + "\n")
	for _, name := range order {
		r := res[name]
		if r == nil || r.allOps == 0 {
			continue
		}
		per := func(cpu float64) float64 { return cpu / float64(r.allOps) * 1e6 }
		total := per(r.loadCPU)
		fmt.Fprintf(&b, "| %s | %.0f | %.0f |", name, median(r.qps), per(r.loadCPU))
		for _, c := range columns {
			cpu, ok := r.procCPU[c]
			if !ok {
				b.WriteString(" — |")
				continue
			}
			total += per(cpu)
			fmt.Fprintf(&b, " %.0f |", per(cpu))
		}
		fmt.Fprintf(&b, " %.0f | %.2f |\n", total, total*float64(r.allOps)/1e6/r.elapsed.Seconds())
	}
	return b.String()
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
