package soak

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
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
	"github.com/etcdshim/etcdshim/internal/testpki"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// plan is the run's length and when its events happen.
type plan struct {
	// long: a run by hand (SOAK_DURATION of at least longRun), whose
	// report is committed and which asserts the runtime slopes.
	long                bool
	report              string
	duration, warmup    time.Duration
	sampleEvery         time.Duration
	scrapeEvery         time.Duration
	busy, quiet         time.Duration
	failback            time.Duration
	rotateAt, restartAt time.Duration
	compactAt           time.Duration
	describe            string
	goroutineSlopeBound float64 // per minute
	rssSlopeBoundMiB    float64 // per minute
}

// longRun is the least duration whose slopes are asserted: shorter runs are
// dominated by their events and the first minutes of the process.
const longRun = 10 * time.Minute

func newPlan(t *testing.T) plan {
	p := plan{duration: 150 * time.Second, report: "report-ci.md", sampleEvery: 2 * time.Second, scrapeEvery: 2 * time.Second,
		busy: 15 * time.Second, quiet: 5 * time.Second, failback: 2 * time.Second,
		describe: "`go test ./e2e/soak/` (CI-sized)"}
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			t.Fatalf("SOAK_DURATION=%q: want a duration of at least 1m", v)
		}
		p.duration = d
		p.report = "report-" + regexp.MustCompile(`[^0-9a-z]`).ReplaceAllString(v, "") + ".md"
		p.describe = fmt.Sprintf("`SOAK_DURATION=%s go test -timeout %v ./e2e/soak/`", v, (d + 15*time.Minute).Round(time.Minute))
		if d >= longRun {
			p.long = true
			p.sampleEvery = 10 * time.Second
			p.failback = 10 * time.Second
		}
	}
	// The events come early, so that most of the run after the warm-up is
	// steady state; the slopes are measured from the end of the warm-up.
	p.warmup = p.duration / 6
	p.rotateAt = p.duration / 5
	p.restartAt = p.duration * 3 / 10
	p.compactAt = p.duration * 9 / 20
	// Bounds of the long run (see the checks at the end for why).
	p.goroutineSlopeBound = 1
	p.rssSlopeBoundMiB = 1
	return p
}

// TestSoak is issue 19's compressed soak (see doc.go).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	p := newPlan(t)
	rep := &report{run: p.describe, started: time.Now(), busy: p.busy, quiet: p.quiet}
	// The report is written however the run ends: a run that stops
	// half-way still says what its clients saw until then.
	defer func() { rep.write(t, p.report) }()
	step := func(format string, args ...any) {
		s := fmt.Sprintf("%s "+format, append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
		rep.steps = append(rep.steps, s)
		t.Log(s)
	}
	e := startEnv(t, p.failback)
	step("3 members and 3 shims started; auth on (token TTL %d s)", tokenTTL)
	// The test's own root client is closed before the baseline and after
	// the checks, so that its connections are in neither count.
	root := e.rootClient(t)
	ctx0, cancel0 := context.WithTimeout(context.Background(), 30*time.Second)
	head, err := root.Get(ctx0, "v3/")
	cancel0()
	root.Close()
	if err != nil {
		t.Fatalf("root read: %v", err)
	}

	r := &run{t: t, e: e, a: &acks{v2: map[string]string{}, v3: map[string]string{}}, failback: p.failback,
		stopFile: filepath.Join(t.TempDir(), "stop"), down: make([]atomic.Bool, len(e.shims)),
		seen: map[string][]uint64{}, cleared: map[string]int{}}
	samples := make([][]sample, len(e.shims))
	var smu sync.Mutex
	stopSampler := r.sampler(p.sampleEvery, samples, &smu)
	defer stopSampler()
	// The baseline: the shims idle with auth on, before any client, after
	// one scrape of /metrics each (its connection to the member stays idle
	// in the shim's pool, as the scraper's will at the end).
	warm := e.httpClient(30 * time.Second)
	for _, sh := range e.shims {
		if resp, err := warm.Get(sh.URL + "/metrics"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	warm.CloseIdleConnections()
	time.Sleep(3 * p.sampleEvery)
	smu.Lock()
	baseline := make([]sample, len(e.shims))
	baseStacks := make([]string, len(e.shims))
	for i := range samples {
		baseline[i] = samples[i][len(samples[i])-1]
		baseStacks[i] = goroutineDump(e, i)
	}
	smu.Unlock()
	step("baseline goroutines %v", goroutineList(baseline))

	ctx, stopClients := context.WithCancel(context.Background())
	r.ctx = ctx
	r.ph = phase{t0: time.Now(), busy: p.busy, quiet: p.quiet}
	probes := r.client("v2 compaction probes")
	r.keyspaceWatch(head.Header.Revision + 1)
	r.v2Writers()
	r.v2Readers()
	r.etcdctlV2()
	r.pythonEtcd()
	r.patroni()
	r.v2Watcher("v2 watch /app/hot (long polls)", 1, "/app/hot", false)
	r.v2Watcher("v2 watch /app/w recursive (long polls)", 2, "/app/w", true)
	r.jsonClient()
	r.grpcClient(head.Header.Revision + 1)
	r.scraper(p.scrapeEvery)
	rep.clients = r.clients
	start := r.ph.t0
	defer func() {
		if rep.duration == 0 {
			rep.duration = time.Since(start).Round(time.Second)
		}
	}()
	step("clients started: busy %v, quiet %v", p.busy, p.quiet)
	until := func(at time.Duration) {
		if d := time.Until(start.Add(at)); d > 0 {
			time.Sleep(d)
		}
	}

	until(p.rotateAt)
	r.rotate(t, step)
	until(p.restartAt)
	restarted := r.restart(t, step)
	until(p.compactAt)
	root = e.rootClient(t)
	defer root.Close()
	r.compact(t, root, probes, start.Add(p.duration), step)
	until(p.duration)

	stopAt := time.Now()
	rep.duration = stopAt.Sub(start).Round(time.Second)
	stopClients()
	if err := os.WriteFile(r.stopFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r.wg.Wait()
	for _, pr := range r.procs {
		select {
		case err := <-pr.done:
			if err != nil {
				t.Errorf("%s exited: %v\n%s", pr.name, err, pr.stderr.String())
			}
		case <-time.After(60 * time.Second):
			_ = pr.cmd.Process.Kill()
			t.Errorf("%s did not stop\n%s", pr.name, pr.stderr.String())
		}
	}
	for _, c := range r.closers {
		c()
	}
	step("clients stopped")

	// Per client: exactly 0 failed requests.
	for _, c := range r.clients {
		sent, ok, failed, _ := c.totals()
		if sent == 0 || ok == 0 {
			t.Errorf("%s: %d requests, %d ok: the client did not run", c.name, sent, ok)
		}
		if failed != 0 {
			t.Errorf("%s: %d of %d requests failed, want 0", c.name, failed, sent)
		}
	}

	rep.checks, rep.problems = r.verify(t, root, restarted)
	for _, pr := range rep.problems {
		t.Error(pr)
	}
	root.Close()

	// Goroutines back at the baseline once the clients are gone: what a
	// client left behind in the shim (a watch, a tunnel, a token renewal, a
	// long poll) would stay. The shim's idle connections to the members
	// close after 90 s (proxy/pool.go), hence the wait.
	// The sampler stops first: the baseline was taken by its connection
	// alone, and this loop's connection takes its place.
	stopSampler()
	after := make([]sample, len(e.shims))
	hc := e.httpClient(10 * time.Second)
	deadline := time.Now().Add(100 * time.Second)
	for {
		back := true
		for i, sh := range e.shims {
			s, err := scrapeShim(hc, sh.URL)
			if err != nil {
				t.Fatalf("scraping %s: %v", sh.URL, err)
			}
			after[i] = s
			if s.goroutines > baseline[i].goroutines {
				back = false
			}
		}
		if back || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	hc.CloseIdleConnections()
	step("goroutines after the clients: %v (baseline %v)", goroutineList(after), goroutineList(baseline))
	for i := range e.shims {
		if after[i].goroutines > baseline[i].goroutines {
			t.Errorf("shim %d: %v goroutines after the clients left, %v at the baseline; more than at the baseline:\n%s", i,
				after[i].goroutines, baseline[i].goroutines, stackDiff(baseStacks[i], goroutineDump(e, i)))
		}
	}

	// Runtime after the warm-up until the clients stopped.
	smu.Lock()
	for i := range e.shims {
		f := measureFlatness(fmt.Sprintf("shim %d (m%d)", i, i), samples[i], start.Add(p.warmup), stopAt)
		f.baseline, f.afterClients = baseline[i].goroutines, after[i].goroutines
		rep.flat = append(rep.flat, f)
	}
	smu.Unlock()
	for _, f := range rep.flat {
		t.Logf("%s: goroutines slope %+.3f/min (%.0f–%.0f), RSS slope %+.3f MiB/min (%.1f–%.1f MiB) over %d samples",
			f.shim, f.goroutineSlope, f.gLo, f.gHi, f.rssSlope, f.rssLo, f.rssHi, f.samples)
		if !p.long {
			continue
		}
		// The long run's bounds. The clients make several thousand requests
		// a minute, a long poll or two a second per watcher, a token renewal
		// per credential and shim every 20 s, and reconnect through every
		// restart: a leak of one goroutine per any of these, or per
		// thousand requests, grows the count by several a minute, and the
		// bound is one. The count's noise (requests in flight, ±20) over
		// 30 minutes of samples moves the slope by about 0.1/min.
		if f.goroutineSlope >= p.goroutineSlopeBound {
			t.Errorf("%s: goroutines grow by %.3f a minute after the warm-up, want below %v", f.shim, f.goroutineSlope, p.goroutineSlopeBound)
		}
		// RSS: a leak of 200 bytes per request at this rate is over 1 MiB
		// a minute; the heap's swing between collections (the 8 MiB GC
		// headroom) over 30 minutes moves the slope by well under 0.1.
		if f.rssSlope >= p.rssSlopeBoundMiB {
			t.Errorf("%s: RSS grows by %.3f MiB a minute after the warm-up, want below %v", f.shim, f.rssSlope, p.rssSlopeBoundMiB)
		}
	}
}

// stackDiff lists the goroutine stacks (by their functions) of which a
// debug=1 goroutine profile after holds more than before.
func stackDiff(before, after string) string {
	count := func(profile string) map[string]int {
		out := map[string]int{}
		if _, rest, ok := strings.Cut(profile, "\n"); ok && strings.HasPrefix(profile, "goroutine profile:") {
			profile = rest
		}
		for _, block := range strings.Split(profile, "\n\n") {
			lines := strings.Split(strings.TrimSpace(block), "\n")
			n, err := strconv.Atoi(strings.Fields(lines[0] + " x")[0])
			if err != nil {
				continue
			}
			var funcs []string
			for _, l := range lines[1:] {
				if f := strings.Fields(l); len(f) >= 3 && f[0] == "#" {
					funcs = append(funcs, f[2])
				}
			}
			out[strings.Join(funcs, "\n\t")] += n
		}
		return out
	}
	b, a := count(before), count(after)
	var out []string
	for sig, n := range a {
		if n > b[sig] {
			out = append(out, fmt.Sprintf("%d more of:\n\t%s", n-b[sig], sig))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func goroutineList(ss []sample) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = strconv.Itoa(int(s.goroutines))
	}
	return strings.Join(parts, ", ")
}

// goroutineDump is a shim's goroutine profile (--enable-pprof, loopback).
func goroutineDump(e *env, i int) string {
	hc := e.httpClient(10 * time.Second)
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(e.shims[i].URL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// rotate replaces every shim's certificate files on disk: the serving pair
// and the upstream client pair with new certificates of the same CA, and
// both CA bundles (--trusted-ca-file, --cacert) with one that also holds
// the next CA, as a CA rollover begins. New handshakes on the client side
// must get the new serving certificate at once; the upstream files are
// checked once the member restart made the shims connect again.
func (r *run) rotate(t *testing.T, step func(string, ...any)) {
	next := testpki.NewCA(t, "etcdshim soak next CA")
	bundle := append(append([]byte{}, r.e.memberPKI.Issuer.PEM...), next.PEM...)
	for i, f := range r.e.files {
		f.Reissue(t, servingSerial(i), upstreamSerial(i))
		testpki.Replace(t, f.CA, bundle)
		testpki.Replace(t, r.e.upCA[i], bundle)
	}
	var got []string
	for i, sh := range r.e.shims {
		serial, err := servedSerial(r.e, sh.URL)
		if err != nil || serial != servingSerial(i) {
			t.Errorf("shim %d after the rotation: a new handshake got serial %d (%v), want the new certificate %d", i, serial, err, servingSerial(i))
		}
		got = append(got, strconv.FormatInt(serial, 10))
	}
	step("certificates rotated on disk (serving and upstream pairs, both CA bundles); new handshakes get serials %s", strings.Join(got, ", "))
}

func servingSerial(i int) int64  { return int64(100 + 10*i) }
func upstreamSerial(i int) int64 { return int64(101 + 10*i) }

// servedSerial is the serial of the certificate a new handshake gets.
func servedSerial(e *env, shimURL string) (int64, error) {
	c, err := tls.Dial("tcp", strings.TrimPrefix(shimURL, "https://"), e.clientTLS.Clone())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// restart restarts one follower (a leader move is another helper's
// subject, see the report): its shim is drained first through the admin
// listener's /prestop, as the Kubernetes preStop hook does, and fails back
// by itself once the member serves again. It returns the member's index.
func (r *run) restart(t *testing.T, step func(string, ...any)) int {
	e := r.e
	lead := e.cl.Leader(t)
	k := (lead + 1) % len(e.cl.Members)
	m := e.cl.Members[k]
	before := e.tunnelsOn(k)
	step("restart of %s (a follower; %s leads); tunnels %s", m.Name, e.cl.Members[lead].Name, e.tunnels())
	rep, err := harness.PreStop(e.admins[k])
	if err != nil {
		t.Errorf("prestop of %s: %v", m.Name, err)
	}
	step("prestop of %s's shim answered: leader moved to %q, leader error %q, in flight %+v; tunnels %s",
		m.Name, rep.LeaderMovedTo, rep.LeaderError, rep.InFlight, e.tunnels())
	r.down[k].Store(true)
	m.Stop(t)
	step("%s stopped", m.Name)
	m.Start(t)
	m.WaitHealthy(t)
	r.down[k].Store(false)
	step("%s healthy again", m.Name)
	waitfor.True(t, time.Minute, "the shim of "+m.Name+" to end its drain once the member serves again", func() bool {
		st, err := harness.AdminState(e.admins[k])
		return err == nil && !st.Draining
	})
	step("the shim of %s took its member back; tunnels %s", m.Name, e.tunnels())
	// Its relayed connections return spread over --failback-window.
	back := time.Now().Add(2*r.failback + 10*time.Second)
	for e.tunnelsOn(k) < before && time.Now().Before(back) {
		time.Sleep(200 * time.Millisecond)
	}
	step("tunnels after the failback window: %s", e.tunnels())
	return k
}

// compact compacts the v3 history to the current revision, then asks every
// shim for v2 events by index. An index below the compaction but inside
// the v2 history (a write just before it) must be answered with its event,
// as 3.4 answers from its history, which v3 compaction does not touch; the
// run's first write, with more v2 events after it than the
// history holds,
// must get etcd's 401 "event index cleared", and the watcher then recovers
// as 3.4 documents (GET, watch from X-Etcd-Index+1).
func (r *run) compact(t *testing.T, root *clientv3.Client, c *counter, end time.Time, step func(string, ...any)) {
	hc := r.e.httpClient(30 * time.Second)
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const probeValue = "before-compaction"
	ans, code, _, err := v2Do(ctx, hc, http.MethodPut, r.e.shims[0].URL+"/v2/keys/app/probe", "value="+probeValue)
	if err != nil || code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("probe write: HTTP %d %v %+v", code, err, ans)
	}
	probeIndex := ans.Node.ModifiedIndex
	// A write after the probe's, so that the compaction removes the
	// probe's revision (a compaction keeps the revision it is at).
	mark, err := root.Put(ctx, "v3/compaction-mark", "")
	if err != nil {
		t.Fatalf("root write: %v", err)
	}
	rev := mark.Header.Revision
	if _, err := root.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compaction to %d: %v", rev, err)
	}
	if _, err := root.Get(ctx, "/app/probe", clientv3.WithRev(int64(probeIndex))); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("v3 read at the probe's revision %d after compacting to %d: %v, want %v", probeIndex, rev, err, rpctypes.ErrCompacted)
	}
	step("v2 write of /app/probe at index %d; v3 compacted to revision %d", probeIndex, rev)

	for i, sh := range r.e.shims {
		// Below the compaction, inside the v2 history: the event.
		ans, code, idx, err := v2Do(ctx, hc, http.MethodGet, fmt.Sprintf("%s/v2/keys/app/probe?wait=true&waitIndex=%d", sh.URL, probeIndex), "")
		if err != nil || code != http.StatusOK || ans.Action != "set" || ans.Node.ModifiedIndex != probeIndex || ans.Node.Value != probeValue {
			c.fail(fmt.Sprintf("shim %d, waitIndex %d (compacted in v3, %d indexes back): HTTP %d %+v %v, want the set at %d",
				i, probeIndex, idx-probeIndex, code, ans, err, probeIndex))
		} else {
			c.success()
		}
	}
	r.a.mu.Lock()
	firstIndex, firstKey := uint64(0), ""
	for _, k := range r.a.goKeys {
		if strings.HasPrefix(k, "/app/w/s0/") {
			firstKey = k
			break
		}
	}
	r.a.mu.Unlock()
	if firstKey != "" {
		g, err := root.Get(ctx, firstKey, clientv3.WithSerializable())
		if err == nil && len(g.Kvs) == 1 {
			firstIndex = uint64(g.Kvs[0].ModRevision)
		}
	}
	// A busy machine may not have made the writes yet: wait for them
	// (the clients keep writing) until the run's end.
	since := r.a.v2Since(firstIndex)
	for firstIndex != 0 && since < v2History && time.Now().Before(end) {
		time.Sleep(time.Second)
		since = r.a.v2Since(firstIndex)
	}
	if firstIndex == 0 || since < v2History {
		t.Errorf("the run's first write (%s, index %d) has %d v2 events after it, fewer than the history's %d: the probe of a cleared index would prove nothing",
			firstKey, firstIndex, since, v2History)
		return
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel2()
	for i, sh := range r.e.shims {
		// Older than the v2 history: 401, then the documented recovery.
		ans, code, _, err = v2Do(ctx, hc, http.MethodGet, fmt.Sprintf("%s/v2/keys%s?wait=true&waitIndex=%d", sh.URL, firstKey, firstIndex), "")
		if ok, why := r.clearedCorrectly(ans, code, firstIndex); err != nil || !ok {
			c.fail(fmt.Sprintf("shim %d, waitIndex %d: %v %s", i, firstIndex, err, why))
			continue
		}
		c.answered("errorCode 401 event index cleared (HTTP 400, as 3.4) for the run's first write, with a history's worth of v2 events since")
		if i == 0 {
			step("shim 0 answered waitIndex %d with %q", firstIndex, ans.Cause)
		}
		_, code, etcdIndex, err := v2Do(ctx, hc, http.MethodGet, sh.URL+"/v2/keys/app/hot", "")
		if err != nil || code != http.StatusOK {
			c.fail(fmt.Sprintf("shim %d, recovery GET: HTTP %d %v", i, code, err))
			continue
		}
		c.success()
		ans, code, _, err = v2Do(ctx, hc, http.MethodGet, fmt.Sprintf("%s/v2/keys/app/hot?wait=true&waitIndex=%d", sh.URL, etcdIndex+1), "")
		if err != nil || code != http.StatusOK || ans.Node.ModifiedIndex <= etcdIndex {
			c.fail(fmt.Sprintf("shim %d, recovery watch from %d: HTTP %d %+v %v", i, etcdIndex+1, code, ans, err))
			continue
		}
		c.success()
	}
	step("compaction probes through every shim: the compacted index in the v2 history answered, the run's first index cleared (401), recovery watches answered")
}

// verify reads back every acknowledged write and checks the watchers and
// the certificate reloads; it returns what it checked and what failed.
func (r *run) verify(t *testing.T, root *clientv3.Client, restarted int) (checks, problems []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := r.a
	a.mu.Lock()
	defer a.mu.Unlock()

	read := func(prefix string) map[string]string {
		g, err := root.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			t.Fatalf("reading back %s: %v", prefix, err)
		}
		out := make(map[string]string, len(g.Kvs))
		for _, kv := range g.Kvs {
			out[string(kv.Key)] = string(kv.Value)
		}
		return out
	}
	missing := func(what string, acked, have map[string]string) {
		lost := 0
		for k, v := range acked {
			if have[k] != v {
				lost++
				if lost <= 5 {
					problems = append(problems, fmt.Sprintf("%s: acknowledged %s=%q reads back %q", what, k, v, have[k]))
				}
			}
		}
		if lost > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d of %d acknowledged writes not read back", what, lost, len(acked)))
		} else {
			checks = append(checks, fmt.Sprintf("%s: all %d acknowledged writes read back with their values", what, len(acked)))
		}
	}
	v2 := read("/app/")
	missing("v2 (client/v2, etcdctl, python-etcd)", a.v2, v2)
	if got, _ := strconv.Atoi(v2["/app/hot"]); got < a.hotLast {
		problems = append(problems, fmt.Sprintf("/app/hot holds %q, last acknowledged %d", v2["/app/hot"], a.hotLast))
	}
	missing("v3 (/v3beta JSON, gRPC)", a.v3, read("v3/"))
	for i := 1; i < len(a.queue); i++ {
		if a.queue[i-1] >= a.queue[i] {
			problems = append(problems, fmt.Sprintf("python-etcd in-order keys out of order: %s then %s", a.queue[i-1], a.queue[i]))
		}
	}
	checks = append(checks, fmt.Sprintf("python-etcd's %d in-order keys are in the order acknowledged", len(a.queue)))
	if l := v2["/app/service/soak/leader"]; l == "" || l != a.patroniLeader {
		problems = append(problems, fmt.Sprintf("Patroni's leader key holds %q, but %q refreshed it last", l, a.patroniLeader))
	} else {
		checks = append(checks, fmt.Sprintf("Patroni's leader key names %s, whose refresh of it was acknowledged last", l))
	}

	// Watchers: strictly increasing, and every acknowledged index between
	// their first and last event seen (unless a correct 401 let them skip).
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	for name, acked := range map[string][]uint64{
		"v2 watch /app/hot (long polls)":         a.hotIndexes,
		"v2 watch /app/w recursive (long polls)": a.wIndexes,
		"v3 watch":                               toU64(a.grpcRevs),
	} {
		seen := r.seen[name]
		if len(seen) == 0 {
			problems = append(problems, name+": no event")
			continue
		}
		set := map[uint64]bool{}
		for i, s := range seen {
			set[s] = true
			if i > 0 && seen[i-1] >= s {
				problems = append(problems, fmt.Sprintf("%s: event %d after %d", name, s, seen[i-1]))
			}
		}
		lo, hi := seen[0], seen[len(seen)-1]
		if name == "v3 watch" {
			lo = 0 // it watches from before the first put
		}
		missed, inRange := 0, 0
		for _, idx := range acked {
			if idx < lo || idx > hi {
				continue
			}
			inRange++
			if !set[idx] {
				missed++
			}
		}
		if name == "v3 watch" && len(acked) > 0 && acked[len(acked)-1] > hi {
			problems = append(problems, fmt.Sprintf("%s: the last acknowledged put (revision %d) was not seen (last event %d)", name, acked[len(acked)-1], hi))
		}
		switch {
		case missed > 0 && r.cleared[name] == 0:
			problems = append(problems, fmt.Sprintf("%s: missed %d of %d acknowledged indexes between its first and last event", name, missed, inRange))
		default:
			checks = append(checks, fmt.Sprintf("%s: %d events in order; %d acknowledged indexes in its span, %d missed, %d correct 401s", name, len(seen), inRange, missed, r.cleared[name]))
		}
	}

	// Certificate reloads: every shim re-read each file it was given (the
	// upstream ones at the reconnections to the restarted member).
	for i, sh := range r.e.shims {
		f := r.e.files[i]
		for _, want := range []struct{ msg, key, path string }{
			{"certificate reloaded", `"cert":"`, f.ServerCert},
			{"certificate reloaded", `"cert":"`, f.ClientCert},
			{"CA bundle reloaded", `"file":"`, f.CA},
			{"CA bundle reloaded", `"file":"`, r.e.upCA[i]},
		} {
			if len(logLines(t, sh, want.msg, want.key+want.path+`"`)) == 0 {
				problems = append(problems, fmt.Sprintf("shim %d never logged %q for %s", i, want.msg, want.path))
			}
		}
	}
	checks = append(checks, fmt.Sprintf("every shim logged the reload of its serving pair, its upstream pair (at the reconnection to the restarted m%d) and both CA bundles", restarted))
	sort.Strings(checks)
	return checks, problems
}

func toU64(v []int64) []uint64 {
	out := make([]uint64, len(v))
	for i, x := range v {
		out[i] = uint64(x)
	}
	return out
}
