package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// phase is the shared clock of the quiet windows: from t0 on, busy then
// quiet, over and over. Clients with credentials send nothing while it is
// quiet, so every token (the clients' and the shims' own) goes unused
// longer than the TTL and expires.
type phase struct {
	t0          time.Time
	busy, quiet time.Duration
}

func (p phase) quietNow() bool { return time.Since(p.t0)%(p.busy+p.quiet) >= p.busy }

// waitBusy waits out a quiet window; false once ctx ends.
func (p phase) waitBusy(ctx context.Context) bool {
	for p.quietNow() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return ctx.Err() == nil
}

// acks are the acknowledged writes, read back at the end.
type acks struct {
	mu sync.Mutex
	// v2 is every acknowledged v2 key with its value (each written once).
	v2 map[string]string
	// goKeys are the client/v2 writers' keys, for the readers.
	goKeys []string
	// v2Revs are the revisions of the v2 keyspace, in order (keyspaceWatch).
	v2Revs []uint64
	// wIndexes are the client/v2 writers' indexes under /app/w.
	wIndexes []uint64
	// hotIndexes and hotLast are the writes of /app/hot (one writer,
	// counting up).
	hotIndexes []uint64
	hotLast    int
	// queue are python-etcd's in-order keys, in the order acknowledged.
	queue []string
	// v3 is every acknowledged v3 key with its value.
	v3 map[string]string
	// grpcRevs are the revisions of acknowledged gRPC puts.
	grpcRevs []int64
	// patroniLeader is the Patroni node whose leader-key write was
	// acknowledged last.
	patroniLeader string
}

func (a *acks) v2Write(key, value string, index uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.v2[key] = value
}

// v2Since counts the v2 events at or after index: the revisions of the v2
// keyspace, each of which the shim's history holds as one v2 event, as the
// test's own root watch saw them (every writer's, Patroni's and etcdctl's
// included, whose indexes the clients do not all report).
func (a *acks) v2Since(index uint64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.v2Revs), func(i int) bool { return a.v2Revs[i] >= index })
	return len(a.v2Revs) - i
}

// keyspaceWatch records every revision of the v2 keyspace ("/" and below)
// from rev on, as root, until the run ends.
func (r *run) keyspaceWatch(rev int64) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: r.e.shimURLs(), TLS: r.e.clientTLS.Clone(), DialTimeout: 30 * time.Second,
		Username: rootUser, Password: rootPass, Logger: zap.NewNop()})
	if err != nil {
		r.t.Fatal(err)
	}
	r.closers = append(r.closers, func() { cli.Close() })
	r.spawn(func() {
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
		defer cancel()
		go func() { <-r.ctx.Done(); cancel() }()
		next := rev
		for ctx.Err() == nil {
			for resp := range cli.Watch(ctx, "/", clientv3.WithPrefix(), clientv3.WithRev(next)) {
				for _, ev := range resp.Events {
					if ev.Kv.ModRevision < next {
						continue
					}
					r.a.mu.Lock()
					r.a.v2Revs = append(r.a.v2Revs, uint64(ev.Kv.ModRevision))
					r.a.mu.Unlock()
					next = ev.Kv.ModRevision + 1
				}
			}
		}
	})
}

// run is the soak while its clients run.
type run struct {
	t        *testing.T
	e        *env
	ph       phase
	ctx      context.Context
	wg       sync.WaitGroup
	a        *acks
	clients  []*counter
	stopFile string
	// down[i]: member i is stopped, so its shim's /metrics (the member's
	// page) cannot be answered.
	down    []atomic.Bool
	procs   []*pyProc
	closers []func()
	// failback is the shims' --failback-window.
	failback time.Duration

	watchMu sync.Mutex
	seen    map[string][]uint64 // v2 watcher → indexes seen, in order
	cleared map[string]int      // v2 watcher → correct 401 answers
}

func (r *run) client(name string) *counter {
	c := newCounter(name)
	r.clients = append(r.clients, c)
	return c
}

func (r *run) spawn(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

func (r *run) pause(d time.Duration) {
	select {
	case <-r.ctx.Done():
	case <-time.After(d):
	}
}

// reqTimeout bounds one request: far above what any answer should take, as
// the machine is shared and a slow answer is not what this test counts
// (the benchmarks measure latency); client/v2 itself has no header timeout
// unless told.
const reqTimeout = 60 * time.Second

// reqCtx bounds one request. It does not end with the run: a request the
// run's end would cut is not the client's failure, so every request that
// started is waited for and counted.
func reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), reqTimeout)
}

// v2Writers: one go.etcd.io/etcd/client/v2 writer per shim, each key
// written once (/app/w/s<i>/<n>); the first also counts up /app/hot, which
// the key watcher follows.
func (r *run) v2Writers() {
	c := r.client("v2 writer (client/v2)")
	for i, sh := range r.e.shims {
		kapi, closeIdle := r.keysAPI(sh.URL)
		r.closers = append(r.closers, closeIdle)
		r.spawn(func() {
			for n := 1; r.ph.waitBusy(r.ctx); n++ {
				key, val := fmt.Sprintf("/app/w/s%d/%d", i, n), strconv.Itoa(n)
				ctx, cancel := reqCtx()
				resp, err := kapi.Set(ctx, key, val, nil)
				cancel()
				if err != nil {
					c.fail("set: " + err.Error())
				} else {
					c.success()
					r.a.v2Write(key, val, resp.Node.ModifiedIndex)
					r.a.mu.Lock()
					r.a.goKeys = append(r.a.goKeys, key)
					r.a.wIndexes = append(r.a.wIndexes, resp.Node.ModifiedIndex)
					r.a.mu.Unlock()
				}
				if i == 0 {
					ctx, cancel := reqCtx()
					resp, err := kapi.Set(ctx, "/app/hot", val, nil)
					cancel()
					if err != nil {
						c.fail("set /app/hot: " + err.Error())
					} else {
						c.success()
						r.a.mu.Lock()
						r.a.hotIndexes = append(r.a.hotIndexes, resp.Node.ModifiedIndex)
						r.a.hotLast = n
						r.a.mu.Unlock()
					}
				}
				r.pause(40 * time.Millisecond)
			}
		})
	}
}

func (r *run) keysAPI(shimURL string) (clientv2.KeysAPI, func()) {
	tr := &http.Transport{TLSClientConfig: r.e.clientTLS.Clone()}
	c, err := clientv2.New(clientv2.Config{Endpoints: []string{shimURL}, Transport: tr, Username: appUser, Password: appPass})
	if err != nil {
		r.t.Fatal(err)
	}
	return clientv2.NewKeysAPI(c), tr.CloseIdleConnections
}

// v2Readers: one client/v2 reader per shim: a quorum read of an
// acknowledged key (its value must be the one written) and a plain read of
// /app/hot (any value: plain reads may trail, as on 3.4).
func (r *run) v2Readers() {
	c := r.client("v2 reader (client/v2)")
	for _, sh := range r.e.shims {
		kapi, closeIdle := r.keysAPI(sh.URL)
		r.closers = append(r.closers, closeIdle)
		rnd := rand.New(rand.NewSource(time.Now().UnixNano()))
		r.spawn(func() {
			for r.ph.waitBusy(r.ctx) {
				r.a.mu.Lock()
				key, want := "", ""
				if len(r.a.goKeys) > 0 {
					key = r.a.goKeys[rnd.Intn(len(r.a.goKeys))]
					want = r.a.v2[key]
				}
				hotWritten := r.a.hotLast > 0
				r.a.mu.Unlock()
				if key != "" {
					ctx, cancel := reqCtx()
					resp, err := kapi.Get(ctx, key, &clientv2.GetOptions{Quorum: true})
					cancel()
					switch {
					case err != nil:
						c.fail("quorum get: " + err.Error())
					case resp.Node.Value != want:
						c.fail(fmt.Sprintf("quorum get %s: %q, acknowledged %q", key, resp.Node.Value, want))
					default:
						c.success()
					}
				}
				ctx, cancel := reqCtx()
				_, err := kapi.Get(ctx, "/app/hot", nil)
				cancel()
				switch {
				case err != nil && clientv2.IsKeyNotFound(err) && !hotWritten:
					c.success() // before the first write of /app/hot
				case err != nil:
					c.fail("get /app/hot: " + err.Error())
				default:
					c.success()
				}
				r.pause(40 * time.Millisecond)
			}
		})
	}
}

// etcdctlV2: etcd 3.4's etcdctl with ETCDCTL_API=2 and --username, a new
// process (and TLS handshake, after syncing the member list) per command,
// round the shims: set, get, and every fifth time member list.
func (r *run) etcdctlV2() {
	c := r.client("etcdctl v2 (--username)")
	r.spawn(func() {
		for n := 1; r.ph.waitBusy(r.ctx); n++ {
			ep := r.e.shims[n%len(r.e.shims)].URL
			// Timeouts well above etcdctl's defaults (2 s per request, 5 s
			// in all): the machine is shared, and a slow answer is not what
			// this test counts (the benchmarks measure latency).
			base := []string{"--endpoints", ep, "--ca-file", r.e.caFile, "--username", appUser + ":" + appPass,
				"--timeout", "10s", "--total-timeout", "25s"}
			key, val := fmt.Sprintf("/app/ctl/%d", n), "v"+strconv.Itoa(n)
			run := func(want string, args ...string) bool {
				out, err := harness.Etcdctl(r.t, []string{"ETCDCTL_API=2"}, append(append([]string{}, base...), args...)...)
				out = strings.TrimSpace(out)
				if err != nil || !strings.Contains(out, want) {
					c.fail(fmt.Sprintf("etcdctl %s: %v: %s", args[0], err, out))
					return false
				}
				c.success()
				return true
			}
			if !run(val, "set", key, val) {
				// its read would fail for the set's failure, not its own
				r.pause(150 * time.Millisecond)
				continue
			}
			r.a.v2Write(key, val, 0)
			// --quorum: etcdctl picks any shim from the member list, and a
			// plain read on another member may trail the write, on 3.4 too.
			run(val, "get", "--quorum", key)
			if n%5 == 0 {
				run("isLeader=true", "member", "list")
			}
			r.pause(150 * time.Millisecond)
		}
	})
}

// pyProc is a python client process reporting one line per request.
type pyProc struct {
	name   string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// python starts script (testdata) with args and counts its lines with line.
func (r *run) python(name, script string, line func(fields []string), args ...string) {
	cmd := exec.Command("/usr/bin/python3", append([]string{filepath.Join("testdata", script)}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	p := &pyProc{name: name, cmd: cmd, done: make(chan error, 1)}
	cmd.Stderr = &p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.procs = append(r.procs, p)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line(strings.Fields(sc.Text()))
		}
		p.done <- cmd.Wait()
	}()
}

func hostPort(u string) (string, string) {
	pu, _ := url.Parse(u)
	return pu.Hostname(), pu.Port()
}

func (r *run) phaseArgs() []string {
	return []string{strconv.FormatFloat(float64(r.ph.t0.UnixNano())/1e9, 'f', 3, 64),
		strconv.FormatFloat(r.ph.busy.Seconds(), 'f', 3, 64), strconv.FormatFloat(r.ph.quiet.Seconds(), 'f', 3, 64), r.stopFile}
}

// pythonEtcd: python3-etcd with username and password through the second
// shim (testdata/pyetcd_loop.py).
func (r *run) pythonEtcd() {
	c := r.client("python-etcd")
	host, port := hostPort(r.e.shims[1%len(r.e.shims)].URL)
	r.python("python-etcd", "pyetcd_loop.py", func(f []string) {
		switch {
		case len(f) >= 5 && f[0] == "ok":
			c.success()
			idx, _ := strconv.ParseUint(f[3], 10, 64)
			switch f[1] {
			case "write":
				r.a.v2Write(f[2], f[4], idx)
			case "inorder":
				r.a.v2Write(f[2], f[4], idx)
				r.a.mu.Lock()
				r.a.queue = append(r.a.queue, f[2])
				r.a.mu.Unlock()
			case "cas":
				r.a.v2Write(f[2], f[4], idx)
			}
		case len(f) >= 3 && f[0] == "fail":
			// fail <op> <key> <error>: counted by op and error
			c.failDetail(f[1]+": "+strings.Join(f[3:], " "), f[2])
		case len(f) >= 1 && f[0] == "done":
		default:
			c.fail("unexpected output: " + strings.Join(f, " "))
		}
	}, append([]string{host, port, r.e.caFile, appUser, appPass}, r.phaseArgs()...)...)
}

// patroni: two Patroni nodes on the etcd DCS through the third shim
// (testdata/patroni_loop.py).
func (r *run) patroni() {
	c := r.client("Patroni DCS (2 nodes)")
	host, port := hostPort(r.e.shims[2%len(r.e.shims)].URL)
	r.python("patroni", "patroni_loop.py", func(f []string) {
		switch {
		case len(f) >= 4 && f[0] == "ok":
			c.success()
			if (f[2] == "update_leader" || f[2] == "attempt_to_acquire_leader") && f[3] == "True" {
				r.a.mu.Lock()
				r.a.patroniLeader = f[1]
				r.a.mu.Unlock()
			}
		case len(f) >= 2 && f[0] == "fail":
			c.fail(strings.Join(f[1:], " "))
		case len(f) >= 1 && f[0] == "done":
		default:
			c.fail("unexpected output: " + strings.Join(f, " "))
		}
	}, append([]string{host + ":" + port, r.e.caFile, appUser, appPass}, r.phaseArgs()...)...)
}

// v2Answer is a v2 keys answer.
type v2Answer struct {
	Action    string `json:"action"`
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
	Cause     string `json:"cause"`
	Index     uint64 `json:"index"`
	Node      struct {
		Key           string `json:"key"`
		Value         string `json:"value"`
		ModifiedIndex uint64 `json:"modifiedIndex"`
	} `json:"node"`
}

// v2Do sends one v2 request as app and decodes the answer; etcdIndex is the
// X-Etcd-Index header.
func v2Do(ctx context.Context, hc *http.Client, method, u, form string) (ans v2Answer, code int, etcdIndex uint64, err error) {
	var body io.Reader
	if form != "" {
		body = strings.NewReader(form)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return ans, 0, 0, err
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth(appUser, appPass)
	resp, err := hc.Do(req)
	if err != nil {
		return ans, 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return ans, resp.StatusCode, 0, fmt.Errorf("HTTP %d, reading the body: %w", resp.StatusCode, err)
	}
	etcdIndex, _ = strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
	if err := json.Unmarshal(b, &ans); err != nil {
		return ans, resp.StatusCode, etcdIndex, fmt.Errorf("HTTP %d: %q", resp.StatusCode, b)
	}
	return ans, resp.StatusCode, etcdIndex, nil
}

// clearedAnswer is etcd v2's message for a waitIndex older than its history.
const clearedAnswer = "The event in requested index is outdated and cleared"

// clearedCorrectly says whether a 401 answer to a long poll with waitIndex
// is exactly etcd v2's "event index cleared" answer and whether 3.4 would
// have given it too. Exactly: HTTP 400 (3.4 maps errorCode 401 to no status
// of its own), errorCode 401, 3.4's message, and
// the cause "the requested history has been cleared [O/R]" with R the
// waitIndex asked for and O, the oldest index still held, above it. Rightly:
// at least v2History (the shims' history size) v2 events at or after
// waitIndex (v2Since), so a 3.4 member with that history would no longer
// hold it either. A v3
// compaction is no reason: v2 on 3.4 has none, so an index inside the v2
// history must be answered whatever was compacted.
func (r *run) clearedCorrectly(ans v2Answer, code int, waitIndex uint64) (bool, string) {
	var oldest, requested uint64
	_, err := fmt.Sscanf(ans.Cause, "the requested history has been cleared [%d/%d]", &oldest, &requested)
	switch {
	case code != http.StatusBadRequest || ans.ErrorCode != 401 || ans.Message != clearedAnswer || err != nil:
		return false, fmt.Sprintf("HTTP %d %+v: not v2's event-index-cleared answer", code, ans)
	case requested != waitIndex || oldest <= requested:
		return false, fmt.Sprintf("401 with cause %q for waitIndex %d", ans.Cause, waitIndex)
	}
	if n := r.a.v2Since(waitIndex); n < v2History {
		return false, fmt.Sprintf("401 %q for waitIndex %d with only %d v2 events since (the history holds %d)", ans.Cause, waitIndex, n, v2History)
	}
	return true, ""
}

// v2Watcher chains long polls (wait=true&waitIndex=<last+1>) on path as the
// v2 watchers of 3.4's clients do. A 401 is counted as a correct answer
// only when clearedCorrectly says so; the watcher then recovers as 3.4
// documents: a GET, and a watch from its X-Etcd-Index+1.
func (r *run) v2Watcher(name string, shim int, path string, recursive bool) {
	c := r.client(name)
	hc := r.e.httpClient(0)
	r.closers = append(r.closers, hc.CloseIdleConnections)
	base := r.e.shims[shim].URL + "/v2/keys" + path
	r.spawn(func() {
		var next uint64
		for r.ctx.Err() == nil {
			q := "?wait=true"
			if recursive {
				q += "&recursive=true"
			}
			if next > 0 {
				q += "&waitIndex=" + strconv.FormatUint(next, 10)
			}
			ans, code, _, err := v2Do(r.ctx, hc, http.MethodGet, base+q, "")
			if r.ctx.Err() != nil {
				return // the run ended this poll; it is not counted
			}
			switch {
			case err != nil:
				c.fail(err.Error())
				r.pause(100 * time.Millisecond)
			case code == http.StatusOK && ans.Node.ModifiedIndex > 0:
				c.success()
				r.watchMu.Lock()
				r.seen[name] = append(r.seen[name], ans.Node.ModifiedIndex)
				r.watchMu.Unlock()
				next = ans.Node.ModifiedIndex + 1
			case ans.ErrorCode == 401:
				ok, why := r.clearedCorrectly(ans, code, next)
				if !ok {
					c.fail(why)
				} else {
					c.answered("errorCode 401 event index cleared (HTTP 400, as 3.4), with a history's worth of v2 events since the waitIndex")
					r.watchMu.Lock()
					r.cleared[name]++
					r.watchMu.Unlock()
				}
				ctx, cancel := reqCtx()
				_, gcode, idx, gerr := v2Do(ctx, hc, http.MethodGet, base, "")
				cancel()
				if gerr != nil || gcode != http.StatusOK {
					c.fail(fmt.Sprintf("recovery GET: HTTP %d %v", gcode, gerr))
					next = 0
				} else {
					c.success()
					next = idx + 1
				}
			default:
				c.fail(fmt.Sprintf("HTTP %d %+v", code, ans))
				r.pause(100 * time.Millisecond)
			}
		}
	})
}

// jsonClient: one /v3beta JSON client as v3app per shim, each with a
// token of its own: put, then a range of what it put. It authenticates at
// /v3beta/auth/authenticate, and again when the member refuses its token as
// invalid, then repeats the request once, as clientv3 does for gRPC: a
// simple token expires on each member that has not seen it for the TTL
// (every quiet window; and a member the shim's requests move to, on a drain,
// a restart or a switch of its pool, may not have seen it for as long), and
// a restarted member knows none. That refusal is counted as a renewal; the
// repeated request must succeed.
func (r *run) jsonClient() {
	c := r.client("/v3beta JSON (v3app)")
	for i, sh := range r.e.shims {
		hc := r.e.httpClient(reqTimeout)
		r.closers = append(r.closers, hc.CloseIdleConnections)
		base := sh.URL
		token := ""
		post := func(route, body string) (map[string]any, int, error) {
			req, _ := http.NewRequest(http.MethodPost, base+"/v3beta"+route, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return nil, 0, err
			}
			defer resp.Body.Close()
			var out map[string]any
			b, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(b, &out); err != nil {
				return nil, resp.StatusCode, fmt.Errorf("HTTP %d %q", resp.StatusCode, b)
			}
			return out, resp.StatusCode, nil
		}
		authenticate := func() bool {
			token = ""
			out, code, err := post("/auth/authenticate", fmt.Sprintf(`{"name":%q,"password":%q}`, v3User, v3Pass))
			tok, _ := out["token"].(string)
			if err != nil || code != http.StatusOK || tok == "" {
				c.fail(fmt.Sprintf("authenticate: HTTP %d %v %v", code, out, err))
				return false
			}
			c.success()
			token = tok
			return true
		}
		call := func(route, body string) (map[string]any, bool) {
			for attempt := 0; attempt < 2; attempt++ {
				if token == "" && !authenticate() {
					return nil, false
				}
				out, code, err := post(route, body)
				msg, _ := out["message"].(string)
				switch {
				case err != nil:
					c.fail(route + ": " + err.Error())
					return nil, false
				case code == http.StatusOK:
					c.success()
					return out, true
				case strings.Contains(msg, "invalid auth token") && attempt == 0:
					c.answered("invalid auth token (simple token expired or unknown on the member), then authenticated again and repeated")
					c.renewal()
					token = ""
				default:
					token = ""
					c.fail(fmt.Sprintf("%s: HTTP %d %v", route, code, out))
					return nil, false
				}
			}
			return nil, false
		}
		r.spawn(func() {
			b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
			for n := 1; r.ph.waitBusy(r.ctx); n++ {
				key, val := fmt.Sprintf("v3/json/s%d/%d", i, n), "j"+strconv.Itoa(n)
				if _, ok := call("/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64(key), b64(val))); !ok {
					r.pause(60 * time.Millisecond)
					continue
				}
				r.a.mu.Lock()
				r.a.v3[key] = val
				r.a.mu.Unlock()
				if out, ok := call("/kv/range", fmt.Sprintf(`{"key":%q}`, b64(key))); ok {
					kvs, _ := out["kvs"].([]any)
					if len(kvs) != 1 || kvs[0].(map[string]any)["value"] != b64(val) {
						c.fail(fmt.Sprintf("range %s after an acknowledged put: %v", key, out))
					}
				}
				r.pause(60 * time.Millisecond)
			}
		})
	}
}

// grpcClient: clientv3 as v3app over the three shims: put and get, and a
// watch on what it puts, which must see every acknowledged put.
func (r *run) grpcClient(startRev int64) {
	c := r.client("v3 gRPC (clientv3, v3app)")
	w := r.client("v3 gRPC watch (clientv3, v3app)")
	cli, err := clientv3.New(clientv3.Config{Endpoints: r.e.shimURLs(), TLS: r.e.clientTLS.Clone(), DialTimeout: 30 * time.Second,
		Username: v3User, Password: v3Pass, Logger: zap.NewNop()})
	if err != nil {
		r.t.Fatal(err)
	}
	r.closers = append(r.closers, func() { cli.Close() })
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	putsDone := make(chan struct{})
	r.spawn(func() {
		// The watch ends once it has seen the last acknowledged put (or,
		// if it never does, after a while; the check at the end reports it).
		<-putsDone
		r.a.mu.Lock()
		last := int64(0)
		if n := len(r.a.grpcRevs); n > 0 {
			last = r.a.grpcRevs[n-1]
		}
		r.a.mu.Unlock()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			r.watchMu.Lock()
			s := r.seen["v3 watch"]
			caught := len(s) > 0 && s[len(s)-1] >= uint64(last)
			r.watchMu.Unlock()
			if caught || last == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		wcancel()
	})
	r.spawn(func() {
		next := startRev
		for wctx.Err() == nil {
			for resp := range cli.Watch(wctx, "v3/grpc/", clientv3.WithPrefix(), clientv3.WithRev(next)) {
				if err := resp.Err(); err != nil {
					if wctx.Err() == nil {
						w.fail(err.Error())
					}
					continue
				}
				for _, ev := range resp.Events {
					w.success()
					r.watchMu.Lock()
					r.seen["v3 watch"] = append(r.seen["v3 watch"], uint64(ev.Kv.ModRevision))
					r.watchMu.Unlock()
					next = ev.Kv.ModRevision + 1
				}
			}
		}
	})
	r.spawn(func() {
		defer close(putsDone)
		for n := 1; r.ph.waitBusy(r.ctx); n++ {
			key, val := fmt.Sprintf("v3/grpc/%d", n), "g"+strconv.Itoa(n)
			ctx, cancel := reqCtx()
			resp, err := cli.Put(ctx, key, val)
			cancel()
			if err != nil {
				c.fail("put: " + err.Error())
			} else {
				c.success()
				r.a.mu.Lock()
				r.a.v3[key] = val
				r.a.grpcRevs = append(r.a.grpcRevs, resp.Header.Revision)
				r.a.mu.Unlock()
			}
			ctx, cancel = reqCtx()
			g, err := cli.Get(ctx, key)
			cancel()
			switch {
			case err != nil:
				c.fail("get: " + err.Error())
			case resp != nil && (len(g.Kvs) != 1 || string(g.Kvs[0].Value) != val):
				c.fail(fmt.Sprintf("get %s after an acknowledged put: %v", key, g.Kvs))
			default:
				c.success()
			}
			r.pause(40 * time.Millisecond)
		}
	})
}

// oldMetricNames are names etcd 3.7 renamed or dropped that the shim's
// /metrics keeps for old dashboards (as e2e/upgrade checks).
var oldMetricNames = []string{"\netcd_debugging_mvcc_put_total ", "\netcd_debugging_mvcc_db_total_size_in_bytes "}

// scraper: a Prometheus-style scrape of every shim's /metrics each
// interval, also in the quiet windows (it needs no credentials). A 503 is
// the correct answer only from the shim whose own member (the page's
// source) is stopped.
func (r *run) scraper(every time.Duration) {
	c := r.client("metrics scrape (old names)")
	hc := r.e.httpClient(20 * time.Second)
	r.closers = append(r.closers, hc.CloseIdleConnections)
	r.spawn(func() {
		for r.ctx.Err() == nil {
			for i, sh := range r.e.shims {
				downBefore := r.down[i].Load()
				resp, err := hc.Get(sh.URL + "/metrics")
				if err != nil {
					c.fail(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				missing := ""
				for _, n := range oldMetricNames {
					if !bytes.Contains(b, []byte(n)) {
						missing = strings.TrimSpace(n)
					}
				}
				switch {
				case resp.StatusCode == http.StatusOK && missing == "":
					c.success()
				case resp.StatusCode == http.StatusServiceUnavailable && (downBefore || r.down[i].Load()):
					c.answered("503 from the shim whose own member was stopped (its page is that member's)")
				default:
					c.fail(fmt.Sprintf("HTTP %d, missing %q", resp.StatusCode, missing))
				}
			}
			r.pause(every)
		}
	})
}

// sampler scrapes each shim's own runtime series every interval until the
// returned stop is called; a failed scrape is a failed request of its own
// client.
func (r *run) sampler(every time.Duration, samples [][]sample, mu *sync.Mutex) (stop func()) {
	c := r.client("runtime sampler (/metrics/shim)")
	hc := r.e.httpClient(20 * time.Second)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer hc.CloseIdleConnections()
		for {
			for i, sh := range r.e.shims {
				s, err := scrapeShim(hc, sh.URL)
				if err != nil {
					c.fail(err.Error())
					continue
				}
				c.success()
				mu.Lock()
				samples[i] = append(samples[i], s)
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-time.After(every):
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }); wg.Wait() }
}
