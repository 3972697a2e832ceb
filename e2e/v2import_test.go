package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// v2Do sends one v2 request and fails the test on an unexpected status.
func v2Do(t *testing.T, c *http.Client, method, base, key string, form url.Values) map[string]any {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, base+"/v2/keys"+key, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, b := send(t, c, req)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, key, resp.StatusCode, b)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// v2Tree is GET /v2/keys/?recursive=true&sorted=true with indexes and
// expirations dropped and TTLs replaced by their presence.
func v2Tree(t *testing.T, c *http.Client, base string) any {
	t.Helper()
	resp, err := c.Get(base + "/v2/keys/?recursive=true&sorted=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	var strip func(any)
	strip = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			delete(x, "modifiedIndex")
			delete(x, "createdIndex")
			delete(x, "expiration")
			if _, ok := x["ttl"]; ok {
				x["ttl"] = "<ttl>"
			}
			for _, c := range x {
				strip(c)
			}
		case []any:
			for _, c := range x {
				strip(c)
			}
		}
	}
	strip(v)
	return v
}

// importSummary reads `v2 import`'s summary line: dirs, keys, keys/s.
var importSummary = regexp.MustCompile(`imported (\d+) dirs, (\d+) keys.*\(([\d.]+) keys/s\)`)

// fillBulk writes n keys <dir>/dNN/kNNNNN of bulkValue sizes into base's
// v2 API, 32 at a time.
func fillBulk(t *testing.T, hc *http.Client, base, dir string, n int) {
	t.Helper()
	jobs := make(chan int)
	var fill sync.WaitGroup
	for w := 0; w < 32; w++ {
		fill.Add(1)
		go func() {
			defer fill.Done()
			for i := range jobs {
				key := fmt.Sprintf("%s/d%02d/k%05d", dir, i%50, i)
				req, _ := http.NewRequest(http.MethodPut, base+"/v2/keys"+key, strings.NewReader(url.Values{"value": {bulkValue(i)}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := hc.Do(req)
				if err != nil {
					t.Errorf("filling %s: %v", key, err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					t.Errorf("filling %s: %d", key, resp.StatusCode)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	fill.Wait()
}

func bulkValue(i int) string {
	n := 16 + i%85
	switch {
	case i%100 == 0:
		n = 8 << 10
	case i%10 == 0:
		n = 1 << 10
	}
	return strings.Repeat(string(rune('a'+i%26)), n)
}

// TestV2Import copies a 3.4 member's v2 store into a 3.7 member behind a
// shim with `etcdshim v2 import`, checks it with `v2 verify` and the real v2
// clients, follows live changes, and checks idempotence, conflicts and the
// errors for bad sources.
func TestV2Import(t *testing.T) {
	e2eSerial(t)
	src, dst, shim := startImportPair(t)
	from, to := src.ClientURLs()[0], dst.ClientURLs()[0]
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

	// The source: nested dirs, hidden keys, an in-order queue, TTL keys and
	// a TTL dir, etcdctl-written keys, and 10,000 keys of mixed sizes.
	put := func(key string, form url.Values) { v2Do(t, hc, http.MethodPut, from, key, form) }
	put("/app/config/db/host", url.Values{"value": {"db1"}})
	put("/app/config/db/port", url.Values{"value": {"5432"}})
	put("/app/empty", url.Values{"dir": {"true"}})
	put("/app/_hidden", url.Values{"value": {"secret"}})
	put("/_hdir/x", url.Values{"value": {"in a hidden dir"}})
	put("/_top", url.Values{"value": {"hidden at the top"}})
	put("/ttl/key", url.Values{"value": {"expiring"}, "ttl": {"300"}})
	put("/ttldir", url.Values{"dir": {"true"}, "ttl": {"300"}})
	put("/ttldir/child", url.Values{"value": {"c"}})
	put("/odd key/with space", url.Values{"value": {"v & <x>"}})
	for i := 0; i < 3; i++ {
		v2Do(t, hc, http.MethodPost, from, "/queue", url.Values{"value": {fmt.Sprintf("job%d", i)}})
	}
	etcdctl2(t, from, "set", "/ctl/key", "via etcdctl")
	etcdctl2(t, from, "mkdir", "/ctl/dir")

	const bulk = 10000
	start := time.Now()
	fillBulk(t, hc, from, "/bulk", bulk)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("filled the 3.4 source with %d keys in %s", bulk, time.Since(start).Round(time.Millisecond))

	common := []string{"--from", from, "--endpoints", to, "--log-level", "warn", "--include-hidden", "/app/_hidden,/_hdir,/_top"}
	v3 := newClient(t, to)
	ctx := context.Background()

	t.Run("dry-run writes nothing", func(t *testing.T) {
		out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "import", "--dry-run"}, common...)...)
		if code != 0 || !strings.Contains(out, "would import") {
			t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
		}
		r, err := v3.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || r.Count != 0 {
			t.Fatalf("dry run wrote %d keys (%v)", r.Count, err)
		}
	})

	var imported string
	t.Run("import", func(t *testing.T) {
		begin := time.Now()
		out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "import"}, common...)...)
		took := time.Since(begin)
		if code != 0 {
			t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
		}
		imported = out
		m := importSummary.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no summary in %q", out)
		}
		keys, _ := strconv.Atoi(m[2])
		if keys < bulk {
			t.Fatalf("imported %d keys, want at least %d: %s", keys, bulk, out)
		}
		t.Logf("import summary: %s", strings.TrimSpace(out))
		t.Logf("import throughput: %s keys/s inside the command; %d keys in %s end to end (%.0f keys/s, process start and both reads included)",
			m[3], keys, took.Round(time.Millisecond), float64(keys)/took.Seconds())
	})
	if imported == "" {
		t.FailNow()
	}

	t.Run("verify finds no difference", func(t *testing.T) {
		out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "verify"}, common...)...)
		if code != 0 || !strings.HasPrefix(out, "ok: the destination holds every source node") {
			t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("v2 clients read the same tree through the shim", func(t *testing.T) {
		lsSrc := etcdctl2(t, from, "ls", "-r", "--sort", "/")
		lsShim := etcdctl2(t, shim.URL, "ls", "-r", "--sort", "/")
		if lsSrc != lsShim {
			t.Fatalf("ls -r differs: source %d lines, shim %d lines", strings.Count(lsSrc, "\n"), strings.Count(lsShim, "\n"))
		}
		for _, k := range []string{"/app/config/db/host", "/app/_hidden", "/_hdir/x", "/_top", "/ctl/key", "/bulk/d07/k00007", "/odd key/with space"} {
			if a, b := etcdctl2(t, from, "get", k), etcdctl2(t, shim.URL, "get", k); a != b {
				t.Errorf("get %s: source %q, shim %q", k, a, b)
			}
		}
		a, b := v2Tree(t, hc, from), v2Tree(t, hc, shim.URL)
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			t.Fatalf("recursive GET differs:\nsource %.2000s\nshim   %.2000s", ja, jb)
		}
		// The queue keeps its 20-digit in-order names and order.
		q := etcdctl2(t, shim.URL, "ls", "--sort", "/queue")
		if names := strings.Fields(q); len(names) != 3 || !regexp.MustCompile(`^/queue/\d{20}$`).MatchString(names[0]) {
			t.Fatalf("queue through the shim: %q", q)
		}
		// TTLs became leases with the time left.
		for _, k := range []string{"/ttl/key", "/ttldir/"} {
			r, err := v3.Get(ctx, k)
			if err != nil || len(r.Kvs) != 1 || r.Kvs[0].Lease == 0 {
				t.Fatalf("%s on the destination: %v %v", k, r, err)
			}
			ttl, err := v3.TimeToLive(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
			if err != nil || ttl.TTL < 250 || ttl.TTL > 300 {
				t.Fatalf("%s lease: %+v %v", k, ttl, err)
			}
		}
	})

	t.Run("re-running skips everything", func(t *testing.T) {
		out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "import"}, common...)...)
		if code != 0 || !strings.Contains(out, "imported 0 dirs, 0 keys") {
			t.Fatalf("second import: exit %d\n%s%s", code, out, errOut)
		}
		m := regexp.MustCompile(`skipped (\d+) already equal`).FindStringSubmatch(out)
		if n, _ := strconv.Atoi(m[1]); n < bulk {
			t.Fatalf("second import skipped %d: %s", n, out)
		}
	})

	t.Run("follow applies live changes", func(t *testing.T) {
		fctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(fctx, harness.ShimBinary(t), append([]string{"v2", "import", "--follow"}, common...)...)
		var out, errb lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the initial pass is done (its summary is printed).
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(errb.String(), "following the source") {
			if time.Now().After(deadline) {
				t.Fatalf("follow never started:\n%s%s", out.String(), errb.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		put("/follow/new", url.Values{"value": {"1"}})
		v2Do(t, hc, http.MethodDelete, from, "/app/config/db/port", nil)
		put("/follow/dir", url.Values{"dir": {"true"}})
		put("/app/config/db/host", url.Values{"value": {"db2"}, "prevValue": {"db1"}})
		v2Do(t, hc, http.MethodDelete, from, "/bulk/d03?recursive=true", nil)
		put("/follow/last", url.Values{"value": {"done"}})
		want := map[string]string{"/follow/new": "1", "/app/config/db/host": "db2", "/follow/last": "done"}
		for time.Now().Before(deadline.Add(15 * time.Second)) {
			ok := true
			for k, v := range want {
				r, err := v3.Get(ctx, k)
				if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != v {
					ok = false
				}
			}
			if ok {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		if err != nil {
			t.Fatalf("follow: %v\n%s%s", err, out.String(), errb.String())
		}
		if m := regexp.MustCompile(`followed (\d+) changes`).FindStringSubmatch(out.String()); m == nil || m[1] < "6" {
			t.Errorf("follow summary: %s", out.String())
		}
		for k, v := range want {
			if got := etcdctl2(t, shim.URL, "get", k); got != v {
				t.Errorf("%s through the shim: %q, want %q", k, got, v)
			}
		}
		etcdctl2Fails(t, shim.URL, "Key not found", "get", "/app/config/db/port")
		etcdctl2Fails(t, shim.URL, "Key not found", "ls", "/bulk/d03")
		if got := etcdctl2(t, shim.URL, "ls", "-p", "/follow"); !strings.Contains(got, "/follow/dir/") {
			t.Errorf("ls /follow through the shim: %q", got)
		}
		out2, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "verify"}, common...)...)
		if code != 0 {
			t.Fatalf("verify after follow: exit %d\n%s%s", code, out2, errOut)
		}
	})

	t.Run("verify reports a changed key", func(t *testing.T) {
		if _, err := v3.Put(ctx, "/app/config/db/host", "tampered"); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "verify"}, common...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 1 || len(lines) != 2 || lines[0] != `value differs: /app/config/db/host (source "db2", destination "tampered")` ||
			!strings.HasPrefix(lines[1], "1 node to fix") || errOut != "" {
			t.Fatalf("verify: exit %d\nstdout %q\nstderr %q", code, out, errOut)
		}
		t.Logf("verify: %s", strings.TrimSpace(out))
	})

	t.Run("a conflict is reported and the rest imported", func(t *testing.T) {
		put("/zone/a/child", url.Values{"value": {"x"}})
		put("/zone/b", url.Values{"value": {"y"}})
		put("/zone/c", url.Values{"value": {"z"}})
		if _, err := v3.Put(ctx, "/zone/a", "a v3 file where v2 has a directory"); err != nil {
			t.Fatal(err)
		}
		if _, err := v3.Put(ctx, "/zone/b/", ""); err != nil { // a directory where v2 has a file
			t.Fatal(err)
		}
		args := []string{"v2", "import", "--from", from, "--endpoints", to, "--source-prefix", "/zone", "--log-level", "warn"}
		out, errOut, code := harness.RunShim(t, nil, args...)
		if code != 1 ||
			!strings.Contains(out, "conflict: /zone/a: the destination has a file where the source has a directory (1 nodes below it not imported)") ||
			!strings.Contains(out, "conflict: /zone/b: the destination has a directory where the source has a file") ||
			!strings.Contains(errOut, "2 destination conflicts") {
			t.Fatalf("conflicting import: exit %d\n%s%s", code, out, errOut)
		}
		if got := etcdctl2(t, shim.URL, "get", "/zone/c"); got != "z" {
			t.Fatalf("/zone/c not imported next to the conflicts: %q", got)
		}
		if r, _ := v3.Get(ctx, "/zone/a"); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "a v3 file where v2 has a directory" {
			t.Fatalf("the conflicting v3 key was touched: %v", r.Kvs)
		}
		// Re-running after the conflict is resolved converges.
		if _, err := v3.Delete(ctx, "/zone/a"); err != nil {
			t.Fatal(err)
		}
		if _, err := v3.Delete(ctx, "/zone/b/"); err != nil {
			t.Fatal(err)
		}
		out, errOut, code = harness.RunShim(t, nil, args...)
		if code != 0 || !strings.Contains(out, "skipped 2 already equal") {
			t.Fatalf("import after resolving: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("bad sources give one clear line", func(t *testing.T) {
		cases := []struct {
			name, from, want string
		}{
			{"no v2 (3.7)", to, "etcdshim: v2 API not enabled on the source: start it with --enable-v2=true\n"},
			{"unreachable", fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t)), "unreachable"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				out, errOut, code := harness.RunShim(t, nil, "v2", "import", "--from", c.from, "--endpoints", to, "--log-level", "warn")
				if code != 1 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
					t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
				}
			})
		}
		_, errOut, code := harness.RunShim(t, nil, "v2", "import", "--endpoints", to)
		if code != 2 || !strings.Contains(errOut, "--from is required") {
			t.Fatalf("missing --from: exit %d %q", code, errOut)
		}
	})
}

// startImportPair starts, side by side, a 3.4 member serving v2 (an import's
// source) and a 3.7 member behind a shim (its destination).
func startImportPair(t *testing.T) (src, dst *harness.Cluster, shim *harness.Shim) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		src = harness.StartCluster(t, harness.ClusterConfig{Version: "3.4", EnableV2: true})
	}()
	go func() {
		defer wg.Done()
		dst = harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
		shim = harness.StartShim(t, harness.ShimConfig{Endpoints: dst.ClientURLs()})
	}()
	wg.Wait()
	if src == nil || dst == nil || shim == nil {
		t.FailNow()
	}
	return src, dst, shim
}
