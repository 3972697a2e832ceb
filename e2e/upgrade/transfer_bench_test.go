//go:build bench

package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/etcdshim/etcdshim/internal/waitfor"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestLeaderTransferFloor measures what leadership transfers cost v3 writers
// on a plain three-member 3.7 cluster, with and without the shim:
//
//   - "move-leader": MoveLeader sent to the leader directly (as `etcdctl
//     move-leader`), no shim involved;
//   - "prestop": GET /prestop on the leader's own shim (what the Kubernetes
//     hook does), then DELETE /drain, as when the member comes back.
//
// During both, v3 writers write directly to each member and through each
// member's shim, and a v2 writer writes through each shim. Every failure is
// counted by path, by the role its member had in the transfer (old leader,
// transferee, other) and by kind. TRANSFER_MOVES sets the transfers per
// phase (default 20); the result goes to report-transfer.md.
//
//	go test -tags bench -run TestLeaderTransferFloor -timeout 30m ./e2e/upgrade/
func TestLeaderTransferFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	moves := 20
	if s := os.Getenv("TRANSFER_MOVES"); s != "" {
		moves, _ = strconv.Atoi(s)
	}
	// TRANSFER_LOGS=<dir> keeps the members' logs (at debug level, where raft
	// logs each proposal the old leader refuses) and the shims' there.
	logDir := os.Getenv("TRANSFER_LOGS")
	var extra []string
	if logDir != "" {
		extra = []string{"--log-level", "debug"}
	}
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 3, ExtraArgs: extra})
	urls := cl.ClientURLs()
	var shims []*harness.Shim
	var admins []string
	for i := range cl.Members {
		eps := cl.SidecarEndpoints(i)
		admin := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
		admins = append(admins, admin)
		shims = append(shims, harness.StartShim(t, harness.ShimConfig{Endpoints: eps, Args: []string{
			"--health-interval", "250ms", "--log-level", "info",
			"--listen-admin-url", admin, "--failback-window", "500ms"}}))
	}
	if logDir != "" {
		t.Cleanup(func() {
			for i, m := range cl.Members {
				if b, err := os.ReadFile(m.LogPath()); err == nil {
					_ = os.WriteFile(filepath.Join(logDir, fmt.Sprintf("member-m%d.log", i)), b, 0o644)
				}
				if b, err := os.ReadFile(shims[i].LogPath); err == nil {
					_ = os.WriteFile(filepath.Join(logDir, fmt.Sprintf("shim-m%d.log", i)), b, 0o644)
				}
			}
		})
	}
	newClient := func(ep string) *clientv3.Client { return harness.Client(t, []string{ep}) }

	// One failure: which writer, when, what.
	type failure struct {
		path      string // "direct" or "shim"
		member    int
		call, ret time.Time
		err       string
	}
	var mu sync.Mutex
	var failures []failure
	okCount := map[string]int{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const writersPerTarget = 2
	v3writer := func(path string, member int, c *clientv3.Client, w int) {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			call := time.Now()
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			_, err := c.Put(cctx, fmt.Sprintf("floor/%s/%d/%d/%d", path, member, w, n), "v")
			cancel()
			ret := time.Now()
			mu.Lock()
			switch {
			case err == nil:
				okCount[path]++
			case ctx.Err() == nil:
				failures = append(failures, failure{path, member, call, ret, err.Error()})
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}
	client := &http.Client{Timeout: 15 * time.Second}
	v2writer := func(member int) {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			call := time.Now()
			ev, code, err := v2call(client, "PUT", fmt.Sprintf("%s/v2/keys/floor/%d", shims[member].URL, member), "value="+strconv.Itoa(n))
			ret := time.Now()
			mu.Lock()
			switch {
			case err == nil && code < 300:
				okCount["v2"]++
			case ctx.Err() == nil:
				failures = append(failures, failure{"v2", member, call, ret, errText(err, code, ev)})
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i := range cl.Members {
		direct, viaShim := newClient(urls[i]), newClient(shims[i].URL)
		for w := 0; w < writersPerTarget; w++ {
			wg.Add(2)
			go v3writer("direct", i, direct, w)
			go v3writer("shim", i, viaShim, w)
		}
		wg.Add(1)
		go v2writer(i)
	}

	mc := newClient(urls[0])
	type move struct {
		phase     string
		from, to  int
		win       moveWindow
		failedAt0 int // len(failures) before
	}
	var done []move
	memberIndex := func(id uint64) int {
		for i, u := range urls {
			st, err := mc.Status(context.Background(), u)
			if err == nil && st.Header.MemberId == id {
				return i
			}
		}
		return -1
	}
	leader := func() (int, uint64) { return cl.LeaderStatus(t, mc) }
	settle := func() {
		waitfor.True(t, time.Minute, "every shim's relayed connection back on its own member", func() bool {
			for i, a := range admins {
				rep, err := harness.AdminState(a)
				if err != nil || rep.Draining || rep.Tunnels[urls[i]] != 1 {
					return false
				}
			}
			return true
		})
		// Past the members' request timeout (5 s + 2 election timeouts):
		// a writer still waiting on a write dropped in the last transfer
		// could not fail in this one.
		time.Sleep(7 * time.Second)
	}
	time.Sleep(2 * time.Second)
	for _, phase := range []string{"move-leader", "prestop"} {
		for n := 0; n < moves; n++ {
			settle()
			l, lid := leader()
			m := move{phase: phase, from: l, failedAt0: len(failures)}
			switch phase {
			case "move-leader":
				// The transferee the shim picks too: the first other
				// member in its --endpoints order.
				to := 0
				if l == 0 {
					to = 1
				}
				st, err := mc.Status(context.Background(), urls[to])
				if err != nil {
					t.Fatal(err)
				}
				lc := newClient(urls[l])
				m.win.start = time.Now()
				_, err = lc.MoveLeader(context.Background(), st.Header.MemberId)
				m.win.end = time.Now()
				lc.Close()
				if err != nil {
					t.Fatalf("move-leader: %v", err)
				}
			case "prestop":
				m.win.start = time.Now()
				rep, err := harness.PreStop(admins[l])
				m.win.end = time.Now()
				if rep.LeaderMovedTo == "" { // a 503 (drain timed out) may still have moved it
					t.Fatalf("prestop on the leader's shim moved no leadership: %v, %+v", err, rep)
				}
				// Newer shims report when MoveLeader itself ran.
				if !rep.LeaderMoveStarted.IsZero() {
					m.win.start, m.win.end = rep.LeaderMoveStarted, rep.LeaderMoveEnded
				}
				_, _ = harness.Undrain(admins[l])
			}
			_, nid := leader()
			if nid == lid {
				t.Fatalf("%s: leadership did not move", phase)
			}
			m.to = memberIndex(nid)
			done = append(done, m)
		}
	}
	settle()
	stop()
	waitfor.Group(t, &wg, time.Minute, "the writers")

	// Attribute each failure to the transfer its call overlapped.
	role := func(mv move, member int) string {
		switch member {
		case mv.from:
			return "old leader"
		case mv.to:
			return "transferee"
		}
		return "other follower"
	}
	type key struct{ phase, path, role, kind string }
	count := map[key]int{}
	var outside, each []string
	for _, f := range failures {
		kind := transferKind(f.err)
		if kind == "" {
			kind = f.err
		}
		// The earliest transfer the call overlapped: a dropped write
		// waits out the request timeout, across later transfers.
		var at *move
		for i := range done {
			if duringMove(f.call, f.ret, []moveWindow{done[i].win}) {
				at = &done[i]
				break
			}
		}
		if at == nil {
			outside = append(outside, fmt.Sprintf("%s %s m%d: %s", f.call.UTC().Format("15:04:05.000"), f.path, f.member, f.err))
			continue
		}
		count[key{at.phase, f.path, role(*at, f.member), kind}]++
		each = append(each, fmt.Sprintf("%s m%d→m%d (MoveLeader at %s): %s m%d (%s), call at %+dms, %v: %s",
			at.phase, at.from, at.to, at.win.start.UTC().Format("15:04:05.000"), f.path, f.member, role(*at, f.member),
			f.call.Sub(at.win.start).Milliseconds(), f.ret.Sub(f.call).Round(time.Millisecond), f.err))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Leadership transfers under write load (TestLeaderTransferFloor)\n\nRun %s: three 3.7.3 members "+
		"(heartbeat 50 ms, election 500 ms), one etcdshim per member; %d transfers per phase; on each member %d v3 writers "+
		"direct and %d through its shim (serial Put, 10 ms apart), one v2 writer through each shim.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), moves, writersPerTarget, writersPerTarget)
	fmt.Fprintf(&b, "Acknowledged writes: direct %d, through the shims (v3) %d, v2 %d.\n\n", okCount["direct"], okCount["shim"], okCount["v2"])
	b.WriteString("| phase | writer | member's role | failure | count |\n|---|---|---|---|---|\n")
	keys := make([]key, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, c := keys[i], keys[j]
		return a.phase+a.path+a.role+a.kind < c.phase+c.path+c.role+c.kind
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d |\n", k.phase, k.path, k.role, k.kind, count[k])
	}
	totals := map[string]int{}
	for k, n := range count {
		totals[k.phase+" "+k.path] += n
	}
	b.WriteString("\nPer phase and writer (failures / transfers):\n\n")
	for _, phase := range []string{"move-leader", "prestop"} {
		for _, path := range []string{"direct", "shim", "v2"} {
			fmt.Fprintf(&b, "- %s, %s: %d / %d\n", phase, path, totals[phase+" "+path], moves)
		}
	}
	fmt.Fprintf(&b, "\nFailures outside every transfer: %d\n", len(outside))
	for _, o := range outside {
		b.WriteString("- " + o + "\n")
	}
	b.WriteString("\nEvery failure (call time relative to the MoveLeader request):\n\n")
	for _, e := range each {
		b.WriteString("- " + e + "\n")
	}
	b.WriteString("\nTransfers (from → to, MoveLeader's duration):\n\n")
	for _, m := range done {
		fmt.Fprintf(&b, "- %s m%d → m%d, %v\n", m.phase, m.from, m.to, m.win.end.Sub(m.win.start).Round(time.Millisecond))
	}
	if logDir != "" {
		b.WriteString("\nAt the old leader, from its raft log (debug): how long it refused proposals (from \"starts to transfer " +
			"leadership\" to \"became follower\"), whether the transferee was caught up (MsgTimeoutNow at once) or needed " +
			"an append first, and how many proposals it refused, its own clients' and forwarded ones, the shims' included:\n\n")
		for _, m := range cl.Members {
			for _, w := range raftWindows(t, m.LogPath()) {
				fmt.Fprintf(&b, "- %s %s\n", m.Name, w)
			}
		}
	}
	t.Log("\n" + b.String())
	if err := os.WriteFile(filepath.Join(harness.RepoRoot(), "e2e", "upgrade", "report-transfer.md"), []byte(b.String()), 0o644); err != nil {
		t.Log(err)
	}
}

// raftWindows reads a member's debug log for the transfers it led away:
// "15:04:05.000 refused proposals for 12.3 ms (transferee caught up), 4 refused".
func raftWindows(t *testing.T, path string) []string {
	f, err := os.Open(path)
	if err != nil {
		t.Log(err)
		return nil
	}
	defer f.Close()
	var out []string
	var start time.Time
	immediate, refused := false, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"logger":"raft"`)) {
			continue
		}
		var e struct {
			TS  time.Time `json:"ts"`
			Msg string    `json:"msg"`
		}
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		switch {
		case strings.Contains(e.Msg, "starts to transfer leadership"):
			start, immediate, refused = e.TS, false, 0
		case start.IsZero():
		case strings.Contains(e.Msg, "sends MsgTimeoutNow") && strings.Contains(e.Msg, "immediately"):
			immediate = true
		case strings.Contains(e.Msg, "is in progress; dropping proposal"):
			refused++
		case strings.Contains(e.Msg, "became follower"):
			how := "transferee needed an append first"
			if immediate {
				how = "transferee caught up"
			}
			out = append(out, fmt.Sprintf("%s: refused proposals for %.1f ms (%s), %d refused",
				start.UTC().Format("15:04:05.000"), float64(e.TS.Sub(start).Microseconds())/1000, how, refused))
			start = time.Time{}
		}
	}
	return out
}
