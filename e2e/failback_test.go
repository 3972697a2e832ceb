package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// shimGauge reads one etcdshim_* gauge per label value from /metrics/shim.
func shimGauge(t *testing.T, shimURL, name, label string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(shimURL + "/metrics/shim")
	if err != nil {
		t.Fatalf("scraping the shim: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	prefix := name + "{" + label + "=\""
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		end := strings.Index(rest, "\"")
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[strings.LastIndex(rest, "}")+1:]), 64)
		if end < 0 || err != nil {
			t.Fatalf("metric line %q", line)
		}
		out[rest[:end]] = v
	}
	return out
}

// tunnelsPerMember is etcdshim_tunnels by member name (m1, m2, m3).
func tunnelsPerMember(t *testing.T, shimURL string, cl *harness.Cluster) map[string]int {
	t.Helper()
	g := shimGauge(t, shimURL, "etcdshim_tunnels", "member")
	out := map[string]int{}
	for i, m := range cl.Members {
		out[fmt.Sprintf("m%d", i+1)] = int(g[m.ClientURL])
	}
	return out
}

// TestFailback: a 3-member 3.7 cluster with the shim in front of m1. Tunnels
// are counted per member before, during and after an outage of m1; after
// m1 is back they all return to it, no request of a client writing all
// along fails, and a watch opened during the outage (so on m2) receives
// every event, before and after it was moved.
func TestFailback(t *testing.T) {
	e2eSerial(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 3})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(),
		Args: []string{"--health-interval", "200ms", "--failback-window", "3s"}})

	newClient := func() *clientv3.Client { return harness.Client(t, []string{shim.URL}) }
	// tunnelsAre reports whether onM1 tunnels go to m1 and elsewhere to m2
	// and m3 together, and logs them when asked.
	tunnelsAre := func(onM1, elsewhere int, when string) bool {
		n := tunnelsPerMember(t, shim.URL, cl)
		if when != "" {
			t.Logf("tunnels %s: %v", when, n)
		}
		return n["m1"] == onM1 && n["m2"]+n["m3"] == elsewhere
	}
	writer := newClient()
	ctx := context.Background()
	if _, err := writer.Put(ctx, "fb/start", "0"); err != nil {
		t.Fatal(err)
	}
	if !tunnelsAre(1, 0, "before the outage") {
		t.Fatal("before the outage: want the one client on m1")
	}

	cl.Members[0].Stop(t)
	// The writer's connection died with m1; its next call goes to m2. A
	// call that was in flight on m1 may fail: that is the outage, not the
	// failback, and is not counted.
	waitfor.True(t, time.Minute, "the writer to be served during the outage", func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := writer.Put(c, "fb/outage", "1")
		return err == nil
	})
	watcher := newClient()
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	head, err := watcher.Get(ctx, "fb/start")
	if err != nil {
		t.Fatal(err)
	}
	wch := watcher.Watch(wctx, "fb/w/", clientv3.WithPrefix(), clientv3.WithRev(head.Header.Revision+1))
	if _, err := writer.Put(ctx, "fb/w/0", "during"); err != nil {
		t.Fatal(err)
	}
	if !tunnelsAre(0, 2, "during the outage") {
		t.Fatal("during the outage: want both clients off m1")
	}

	// Writes continue while m1 comes back and the tunnels move: none may fail.
	var (
		mu       sync.Mutex
		failures []error
		writes   int
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := writer.Put(c, fmt.Sprintf("fb/w/%d", i), "failback")
			cancel()
			mu.Lock()
			writes++
			if err != nil {
				failures = append(failures, err)
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	cl.Members[0].Start(t)
	cl.Members[0].WaitHealthy(t)
	waitfor.True(t, time.Minute, "both tunnels back on m1", func() bool { return tunnelsAre(2, 0, "") })
	t.Logf("tunnels after failback: %v", tunnelsPerMember(t, shim.URL, cl))
	close(stop)
	<-done
	mu.Lock()
	t.Logf("writes during failback: %d, failed: %d", writes, len(failures))
	if len(failures) != 0 {
		t.Fatalf("%d of %d writes failed during failback: %v", len(failures), writes, failures)
	}
	total := writes
	mu.Unlock()
	if _, err := writer.Put(ctx, "fb/w/last", "after"); err != nil {
		t.Fatal(err)
	}

	// The watch opened on m2 was moved and resumed: it has every event,
	// in order, none twice.
	seen := map[string]bool{}
	var lastRev int64
	timeout := time.After(60 * time.Second)
	for !seen["fb/w/last"] {
		select {
		case wr, ok := <-wch:
			if !ok {
				t.Fatalf("watch channel closed: %v", wr.Err())
			}
			if err := wr.Err(); err != nil {
				t.Fatalf("watch: %v", err)
			}
			for _, ev := range wr.Events {
				if ev.Kv.ModRevision <= lastRev {
					t.Fatalf("event %s at revision %d after %d", ev.Kv.Key, ev.Kv.ModRevision, lastRev)
				}
				lastRev = ev.Kv.ModRevision
				seen[string(ev.Kv.Key)] = true
			}
		case <-timeout:
			t.Fatalf("the watch opened during the outage did not see every event: %d seen", len(seen))
		}
	}
	for i := 0; i <= total; i++ {
		if k := fmt.Sprintf("fb/w/%d", i); !seen[k] {
			t.Fatalf("the watch missed %s", k)
		}
	}
	moves := shimGauge(t, shim.URL, "etcdshim_tunnel_moves_total", "member")
	t.Logf("tunnel moves: %v", moves)
}

// TestDrainCommand: the admin interface drains only from loopback and only
// on its own listener. A client on the client port cannot drain the shim;
// `etcdshim drain` moves the client's connection off the member without an
// error, and `etcdshim drain --undo` brings it back.
func TestDrainCommand(t *testing.T) {
	e2eSerial(t)
	t.Run("non-loopback admin URL refused", func(t *testing.T) {
		cmd := exec.Command(harness.ShimBinary(t), "--endpoints", "http://127.0.0.1:1",
			"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t)),
			"--listen-admin-url", fmt.Sprintf("http://0.0.0.0:%d", harness.FreePort(t)))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "listen-admin-url") {
			t.Fatalf("a shim with its admin interface on 0.0.0.0 started or failed otherwise: %v\n%s", err, out)
		}
	})

	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 3})
	admin := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(),
		Args: []string{"--health-interval", "200ms", "--failback-window", "1s", "--listen-admin-url", admin}})
	c := harness.Client(t, []string{shim.URL})
	ctx := context.Background()
	put := func(i int) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := c.Put(cctx, "drain/k", strconv.Itoa(i)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	put(0)
	if n := tunnelsPerMember(t, shim.URL, cl); n["m1"] != 1 {
		t.Fatalf("tunnels %v, want the client on m1", n)
	}

	// From the client port: not the admin interface.
	for _, path := range []string{"/drain", "/prestop"} {
		for _, method := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
			req, _ := http.NewRequest(method, shim.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("%s %s on the client port answered 200", method, path)
			}
		}
	}
	if out := runDrain(t, "--admin-url", admin, "--undo"); !strings.Contains(out, `"draining":false`) {
		t.Fatalf("after the client port was tried, the shim drains: %s", out)
	}

	// The writer below must see no failure, so m1 must not lead: a drain of
	// the leader moves leadership, and during a transfer etcd itself refuses
	// or drops writes that nobody may resend, through the shim or not
	// (e2e/upgrade/report-transfer.md). Draining the leader is covered by
	// TestPrestopWithAuth and e2e/upgrade; here it is the relayed connection.
	moveLeaderOff(t, cl, 0)

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := c.Put(cctx, "drain/k", strconv.Itoa(i))
			cancel()
			if err != nil {
				done <- fmt.Errorf("put %d: %w", i, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	out := runDrain(t, "--admin-url", admin)
	if !strings.Contains(out, `"draining":true`) || !strings.Contains(out, `"inFlight":{"tunnels":0,"calls":0}`) {
		t.Fatalf("etcdshim drain: %s", out)
	}
	put(-1)
	if n := tunnelsPerMember(t, shim.URL, cl); n["m1"] != 0 || n["m2"]+n["m3"] != 1 {
		t.Fatalf("tunnels after the drain %v, want the client off m1", n)
	}
	runDrain(t, "--admin-url", admin, "--undo")
	waitfor.True(t, time.Minute, "the client back on m1", func() bool { return tunnelsPerMember(t, shim.URL, cl)["m1"] == 1 })
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("a write failed while the member was drained and undrained: %v", err)
	}
}

// moveLeaderOff moves leadership from cl.Members[i] to another member if it
// leads, talking to the members directly.
func moveLeaderOff(t *testing.T, cl *harness.Cluster, i int) {
	t.Helper()
	c := harness.Client(t, cl.ClientURLs())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Status(ctx, cl.Members[i].ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != st.Header.MemberId {
		return
	}
	other := cl.Members[(i+1)%len(cl.Members)].ClientURL
	ost, err := c.Status(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	lc := harness.Client(t, []string{cl.Members[i].ClientURL})
	if _, err := lc.MoveLeader(ctx, ost.Header.MemberId); err != nil {
		t.Fatalf("move leadership off %s: %v", cl.Members[i].Name, err)
	}
}

func runDrain(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(harness.ShimBinary(t), append([]string{"drain"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("etcdshim drain %v: %v\n%s", args, err, out)
	}
	return string(out)
}
