//go:build bench

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// TestBenchPaired compares this tree's shim with another build of it
// (BENCH_BASELINE_SHIM) on the CPU each spends per v2 request. Both run on
// one 3.7 member, each under its own --v2-prefix so neither follows the
// other's writes, and each round loads both at the same moment with its
// own hey, so both see the same contention: on a noisy 2-core machine this
// resolves a few per cent where alternating arms (make bench) cannot. A
// round's ratio is this tree's CPU per completed request over the
// baseline's; the median of the rounds and their range are printed.
//
//	BENCH_BASELINE_SHIM=/tmp/shim-old go test -tags bench -run TestBenchPaired -v ./e2e/
//
// BENCH_PAIRED_ROUNDS (default 10) and BENCH_PAIRED_SECONDS (default 4)
// size it.
func TestBenchPaired(t *testing.T) {
	baseBin := os.Getenv("BENCH_BASELINE_SHIM")
	if baseBin == "" {
		t.Skip("BENCH_BASELINE_SHIM names the build to compare with")
	}
	rounds := envInt("BENCH_PAIRED_ROUNDS", 10)
	secs := envInt("BENCH_PAIRED_SECONDS", 4)

	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1, ExtraArgs: []string{"--quota-backend-bytes", "8589934592"}})
	args := func(prefix string) []string { return []string{"--log-level", "warn", "--v2-prefix", prefix} }
	cur := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: args("/paired-current")})
	base := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Binary: baseBin, Args: args("/paired-baseline")})
	for _, u := range []string{cur.URL, base.URL} {
		v2do(t, u, "PUT", "/bench/k", "value=x")
	}

	var out strings.Builder
	fmt.Fprintf(&out, "Run %s on %d cores: %d paired rounds of %d s, hey -c 25 on each shim at once; baseline %s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtimeCPUs(), rounds, secs, baseBin)
	out.WriteString("| request | this tree µs/req (median) | baseline µs/req (median) | this tree ÷ baseline: median (range) |\n|---|---|---|---|\n")
	for _, w := range []struct{ name, method, form string }{
		{"GET (read cache)", "GET", ""},
		{"PUT value=x", "PUT", "value=x"},
	} {
		var curUS, baseUS, ratio []float64
		for r := 0; r < rounds; r++ {
			c, b := pairedRound(t, cur, base, w.method, w.form, secs)
			curUS, baseUS, ratio = append(curUS, c), append(baseUS, b), append(ratio, c/b)
		}
		sort.Float64s(ratio)
		fmt.Fprintf(&out, "| %s | %.0f | %.0f | %.3f× (%.3f–%.3f) |\n", w.name,
			median(curUS), median(baseUS), median(ratio), ratio[0], ratio[len(ratio)-1])
	}
	t.Log("\n" + out.String())
}

// pairedRound loads both shims at once and returns each one's CPU
// microseconds per completed request.
func pairedRound(t *testing.T, cur, base *harness.Shim, method, form string, secs int) (curUS, baseUS float64) {
	t.Helper()
	shims := []*harness.Shim{cur, base}
	before := make([]float64, 2)
	for i, s := range shims {
		before[i] = procCPU(s.PID())
	}
	done := make([]int, 2)
	var wg sync.WaitGroup
	for i, s := range shims {
		wg.Go(func() {
			args := []string{"-z", strconv.Itoa(secs) + "s", "-c", "25", "-m", method}
			if form != "" {
				args = append(args, "-T", "application/x-www-form-urlencoded", "-d", form)
			}
			out, err := exec.Command("/usr/bin/hey", append(args, s.URL+"/v2/keys/bench/k")...).CombinedOutput()
			if err != nil {
				t.Errorf("hey: %v %s", err, out)
				return
			}
			done[i] = heyResponses(t, string(out))
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	us := make([]float64, 2)
	for i, s := range shims {
		if done[i] == 0 {
			t.Fatalf("no responses from %s", s.URL)
		}
		us[i] = (procCPU(s.PID()) - before[i]) * 1e6 / float64(done[i])
	}
	return us[0], us[1]
}

// heyResponses is the number of 200 answers in hey's status code
// distribution: anything else fails the round.
func heyResponses(t *testing.T, out string) int {
	t.Helper()
	var ok int
	inDist := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Status code distribution:"):
			inDist = true
		case inDist && strings.HasPrefix(line, "["):
			code, rest, _ := strings.Cut(strings.TrimPrefix(line, "["), "]")
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			if code != "200" {
				t.Fatalf("hey saw %d answers with status %s:\n%s", n, code, out)
			}
			ok += n
		case inDist && line != "":
			inDist = false
		}
	}
	if strings.Contains(out, "Error distribution:") {
		t.Fatalf("hey saw errors:\n%s", out)
	}
	return ok
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
