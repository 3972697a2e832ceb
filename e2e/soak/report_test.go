package soak

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// counter is what one client saw: every request it sent is counted once,
// as ok, as failed (by error text), or as an answer that is not a success
// but is the protocol's correct answer in that situation (each use says
// exactly when; see correct()).
type counter struct {
	name string

	mu       sync.Mutex
	ok       int
	failed   map[string]int
	failedAt []string
	correct  map[string]int
	// renewed counts token renewals a client did itself (the /v3beta
	// client on "invalid auth token"): not requests of the workload.
	renewed int
}

func newCounter(name string) *counter {
	return &counter{name: name, failed: map[string]int{}, correct: map[string]int{}}
}

func (c *counter) success() {
	c.mu.Lock()
	c.ok++
	c.mu.Unlock()
}

func (c *counter) fail(why string) { c.failDetail(why, "") }

// failDetail counts a failure under why and lists it with detail (a key,
// say) among the first ones.
func (c *counter) failDetail(why, detail string) {
	if len(why) > 300 {
		why = why[:300]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed[why]++
	if len(c.failedAt) < 50 {
		c.failedAt = append(c.failedAt, strings.TrimSpace(time.Now().UTC().Format("15:04:05.000")+" "+why+" "+detail))
	}
}

// answered counts an answer that is the correct one for what was asked
// although not a success (what: which answer and why it is correct).
func (c *counter) answered(what string) {
	c.mu.Lock()
	c.correct[what]++
	c.mu.Unlock()
}

func (c *counter) renewal() {
	c.mu.Lock()
	c.renewed++
	c.mu.Unlock()
}

func (c *counter) totals() (sent, ok, failed, correct int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.failed {
		failed += n
	}
	for _, n := range c.correct {
		correct += n
	}
	return c.ok + failed + correct, c.ok, failed, correct
}

// sample is one scrape of a shim's own runtime series.
type sample struct {
	at         time.Time
	goroutines float64
	rssBytes   float64
}

// scrapeShim reads go_goroutines and process_resident_memory_bytes from a
// shim's /metrics/shim: the shim serves its own go_* and process_* series
// there only (its /metrics carries the member's, as etcd's does).
func scrapeShim(client *http.Client, shimURL string) (sample, error) {
	s := sample{at: time.Now()}
	resp, err := client.Get(shimURL + "/metrics/shim")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("/metrics/shim: HTTP %d", resp.StatusCode)
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "go_goroutines":
			dst = &s.goroutines
		case "process_resident_memory_bytes":
			dst = &s.rssBytes
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return s, fmt.Errorf("%s: %w", name, err)
		}
		*dst = v
		found++
	}
	if found != 2 {
		return s, fmt.Errorf("/metrics/shim lacks go_goroutines or process_resident_memory_bytes")
	}
	return s, sc.Err()
}

// slopePerMinute is the least-squares slope of v over time, per minute.
func slopePerMinute(ss []sample, v func(sample) float64) float64 {
	if len(ss) < 2 {
		return 0
	}
	t0 := ss[0].at
	var n, sx, sy, sxx, sxy float64
	for _, s := range ss {
		x := s.at.Sub(t0).Minutes()
		y := v(s)
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

func between(ss []sample, from, to time.Time) []sample {
	var out []sample
	for _, s := range ss {
		if !s.at.Before(from) && !s.at.After(to) {
			out = append(out, s)
		}
	}
	return out
}

func minMax(ss []sample, v func(sample) float64) (lo, hi float64) {
	for i, s := range ss {
		x := v(s)
		if i == 0 || x < lo {
			lo = x
		}
		if i == 0 || x > hi {
			hi = x
		}
	}
	return lo, hi
}

func goroutinesOf(s sample) float64 { return s.goroutines }
func rssMiB(s sample) float64       { return s.rssBytes / (1 << 20) }

// flatness is one shim's runtime over the run.
type flatness struct {
	shim                      string
	samples                   int
	from, to                  time.Time
	goroutineSlope, rssSlope  float64 // per minute (goroutines, MiB)
	gLo, gHi, rssLo, rssHi    float64
	baseline, afterClients    float64 // goroutines before the clients and once they are gone
	firstRSS, lastRSS, firstG float64
	lastG                     float64
}

func measureFlatness(shim string, ss []sample, from, to time.Time) flatness {
	w := between(ss, from, to)
	f := flatness{shim: shim, samples: len(w), from: from, to: to,
		goroutineSlope: slopePerMinute(w, goroutinesOf), rssSlope: slopePerMinute(w, rssMiB)}
	f.gLo, f.gHi = minMax(w, goroutinesOf)
	f.rssLo, f.rssHi = minMax(w, rssMiB)
	if len(w) > 0 {
		f.firstG, f.lastG = w[0].goroutines, w[len(w)-1].goroutines
		f.firstRSS, f.lastRSS = rssMiB(w[0]), rssMiB(w[len(w)-1])
	}
	return f
}

// report is the soak's Markdown report.
type report struct {
	run         string
	started     time.Time
	duration    time.Duration
	busy, quiet time.Duration
	clients     []*counter
	flat        []flatness
	steps       []string
	checks      []string
	problems    []string
}

func (r *report) write(t *testing.T, name string) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak report\n\nRun %s: %s, %v of load.\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.run, r.duration)
	b.WriteString("Setup: three etcd 3.7.3 members (`--auth-token-ttl 3`, simple tokens, TLS with client certificates), one " +
		"etcdshim per member (TLS to clients and to the members, `--user etcdshim`, admin listener), auth on with root, a " +
		"v2 prefix user `app` (`/app/*`) and a v3 prefix user `v3app` (`v3/`). The clients with credentials idle together " +
		fmt.Sprintf("%v in every %v (longer than the token TTL), so every token expires again and again.\n\n", r.quiet, r.busy+r.quiet))
	b.WriteString("| client (through the shims) | requests | ok | failed | correct non-success answers | failures by error |\n|---|---|---|---|---|---|\n")
	total := 0
	for _, c := range r.clients {
		sent, ok, failed, _ := c.totals()
		total += sent
		c.mu.Lock()
		var why, corr []string
		for w, n := range c.failed {
			why = append(why, fmt.Sprintf("%d× %s", n, w))
		}
		for w, n := range c.correct {
			corr = append(corr, fmt.Sprintf("%d× %s", n, w))
		}
		if c.renewed > 0 {
			corr = append(corr, fmt.Sprintf("(and %d token renewals after `invalid auth token`)", c.renewed))
		}
		c.mu.Unlock()
		sort.Strings(why)
		sort.Strings(corr)
		fmt.Fprintf(&b, "| %s | %d | %d | **%d** | %s | %s |\n", c.name, sent, ok, failed, strings.Join(corr, "; "), strings.Join(why, "; "))
	}
	fmt.Fprintf(&b, "| all | %d | | | | |\n", total)
	b.WriteString("\nShim runtime (its own `go_goroutines` and `process_resident_memory_bytes` from `/metrics/shim`), least-squares " +
		"slopes over the samples after the warm-up until the clients stopped:\n\n")
	b.WriteString("| shim | samples | window | goroutines slope /min | goroutines first → last (min–max) | RSS slope MiB/min | RSS first → last (min–max) MiB | goroutines baseline → after the clients |\n|---|---|---|---|---|---|---|---|\n")
	for _, f := range r.flat {
		fmt.Fprintf(&b, "| %s | %d | %s–%s | %+.3f | %.0f → %.0f (%.0f–%.0f) | %+.3f | %.1f → %.1f (%.1f–%.1f) | %.0f → %.0f |\n", f.shim, f.samples,
			f.from.UTC().Format("15:04:05"), f.to.UTC().Format("15:04:05"), f.goroutineSlope, f.firstG, f.lastG, f.gLo, f.gHi,
			f.rssSlope, f.firstRSS, f.lastRSS, f.rssLo, f.rssHi, f.baseline, f.afterClients)
	}
	b.WriteString("\nChecks:\n\n")
	for _, c := range r.checks {
		b.WriteString("- " + c + "\n")
	}
	if len(r.problems) > 0 {
		b.WriteString("\nProblems:\n\n")
		for _, p := range r.problems {
			b.WriteString("- " + p + "\n")
		}
	}
	b.WriteString("\nSteps:\n\n")
	for _, s := range r.steps {
		b.WriteString("- " + s + "\n")
	}
	var first []string
	for _, c := range r.clients {
		c.mu.Lock()
		for _, f := range c.failedAt {
			first = append(first, c.name+": "+f)
		}
		c.mu.Unlock()
	}
	if len(first) > 0 {
		sort.Strings(first)
		b.WriteString("\nFailures (first 50 per client):\n\n")
		for _, f := range first {
			b.WriteString("- `" + f + "`\n")
		}
	}
	path := filepath.Join(harness.RepoRoot(), "e2e", "soak", name)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Log(err)
	}
	t.Logf("report written to %s\n%s", path, b.String())
}
