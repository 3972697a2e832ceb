package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/internal/waitfor"
)

// TestEmbeddedMode runs the README's first command, `etcdshim --embedded`
// (on a free port rather than 2379), and the try-it commands the README lists
// next to it: v3 through etcdctl, the /v3beta gateway, v2 through etcdctl,
// the pre-3.5 metric names and /debug/legacy. SIGTERM then ends it with 0.
func TestEmbeddedMode(t *testing.T) {
	e2eParallel(t)
	dataDir := filepath.Join(t.TempDir(), "etcdshim.etcd")
	shim := harness.StartShim(t, harness.ShimConfig{Args: []string{"--embedded", "--embedded-data-dir", dataDir}})
	ep := shim.URL

	etcdctl3(t, ep, "put", "foo", "bar")
	mustContain(t, "etcdctl v3 get", etcdctl3(t, ep, "get", "foo", "--print-value-only"), "bar")
	mustContain(t, "/v3beta range", httpBody(t, "POST", ep+"/v3beta/kv/range", `{"key":"Zm9v"}`), `"value":"YmFy"`)
	etcdctl2(t, ep, "set", "/dir/key", "value")
	mustContain(t, "etcdctl v2 ls", etcdctl2(t, ep, "ls", "/dir"), "/dir/key")
	mustContain(t, "old metric name", httpBody(t, "GET", ep+"/metrics", ""), "\netcd_debugging_mvcc_put_total ")
	legacy := httpBody(t, "GET", ep+"/debug/legacy", "")
	for _, surface := range []string{`"v2"`, `"v3beta"`, `"metric-alias"`} {
		mustContain(t, "/debug/legacy", legacy, surface)
	}
	logs, _ := os.ReadFile(shim.LogPath)
	mustContain(t, "the shim's log", string(logs), "try it: ETCDCTL_API=3 etcdctl --endpoints "+ep)
	if _, err := os.Stat(filepath.Join(dataDir, "member")); err != nil {
		t.Fatalf("no etcd data in --embedded-data-dir: %v", err)
	}

	shim.Signal(syscall.SIGTERM)
	if code := shim.Wait(); code != 0 {
		t.Fatalf("SIGTERM: exit status %d", code)
	}
}

func httpBody(t *testing.T, method, url, body string) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, b := send(t, nil, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return string(b)
}

// TestEmbeddedCtrlC: Ctrl-C (SIGINT) of `etcdshim --embedded` with clients
// connected ends it with status 0 and not one error-level log line. The
// embedded etcd used to log "setting up serving from embedded etcd failed …
// use of closed network connection" at error level for each of its
// listeners as it closed them.
func TestEmbeddedCtrlC(t *testing.T) {
	e2eParallel(t)
	dataDir := filepath.Join(t.TempDir(), "etcdshim.etcd")
	shim := harness.StartShim(t, harness.ShimConfig{Args: []string{"--embedded", "--embedded-data-dir", dataDir}})
	ep := shim.URL

	// Traffic on every kind of connection the shim holds: a v3 client with
	// a watch open, a v2 write and a v2 long poll, the gateway.
	cli := harness.Client(t, []string{ep})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wch := cli.Watch(ctx, "foo")
	if _, err := cli.Put(ctx, "foo", "bar"); err != nil {
		t.Fatal(err)
	}
	<-wch
	etcdctl2(t, ep, "set", "/dir/key", "value")
	mustContain(t, "/v3beta range", httpBody(t, "POST", ep+"/v3beta/kv/range", `{"key":"Zm9v"}`), `"value":"YmFy"`)
	// A long poll parked at the shim. One answered at once is sent again:
	// until the watch hub follows the keyspace, it answers 300.
	var poll chan struct{}
	longPoll := func() chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := http.Get(ep + "/v2/keys/dir/key?wait=true")
			if err == nil {
				resp.Body.Close()
			}
		}()
		return done
	}
	waitfor.True(t, time.Minute, "a long poll parked at the shim", func() bool {
		select {
		case <-poll:
			poll = nil
		default:
		}
		if poll == nil {
			poll = longPoll()
		}
		v, ok := scrapeValue(t, ep+"/metrics/shim", "etcdshim_v2_watch_waiters")
		return ok && v >= 1
	})

	shim.Signal(syscall.SIGINT)
	if code := shim.Wait(); code != 0 {
		t.Fatalf("SIGINT: exit status %d", code)
	}
	waitfor.Recv(t, poll, time.Minute, "the long poll to end with the shim")
	f, err := os.Open(shim.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var errorLines []string
	sawStopped := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var entry struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &entry) != nil {
			errorLines = append(errorLines, "not a log line: "+sc.Text())
			continue
		}
		if entry.Level == "error" || entry.Level == "fatal" || entry.Level == "panic" || entry.Level == "dpanic" {
			errorLines = append(errorLines, sc.Text())
		}
		sawStopped = sawStopped || entry.Msg == "stopped"
	}
	if len(errorLines) > 0 {
		t.Fatalf("%d error-level lines on a clean shutdown:\n%s", len(errorLines), strings.Join(errorLines, "\n"))
	}
	if !sawStopped {
		t.Fatal(`no "stopped" line: the log does not show the shutdown`)
	}
}
