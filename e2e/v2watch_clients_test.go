package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/internal/waitfor"
)

// TestV2WatchEtcdctlForever: etcd 3.4's `etcdctl watch --forever` through
// the shim prints every write in order, one long poll after another.
func TestV2WatchEtcdctlForever(t *testing.T) {
	e2eParallel(t)
	_, shim := startV2Shim(t)
	etcdctl2(t, shim.URL, "set", "/wf/k", "start")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lines, stop := harness.EtcdctlLines(t, []string{"ETCDCTL_API=2"}, "--endpoints", shim.URL, "watch", "--forever", "/wf/k")
	defer stop()
	// Only the first poll has no waitIndex; etcdctl chains the later ones
	// from each event's index, so writes between polls are not missed.
	waitRegistered(t, shim.URL, 1)
	want := []string{"one", "two", "three", "four", "five"}
	for i, v := range want {
		etcdctl2(t, shim.URL, "set", "/wf/k", v)
		select {
		case got, ok := <-lines:
			if !ok || got != v {
				t.Fatalf("watch --forever: event %d = %q (open %v), want %q", i, got, ok, v)
			}
		case <-ctx.Done():
			t.Fatalf("watch --forever: no event for %q", v)
		}
	}
}

// TestV2WatchExecWatch: `etcdctl exec-watch` runs its command for every
// change below a directory, with the ETCD_WATCH_* variables set from the
// shim's events. (etcdctl 3.4 finds the key and the command around "--" only
// when a flag precedes them, against any server; hence --recursive.)
func TestV2WatchExecWatch(t *testing.T) {
	e2eParallel(t)
	_, shim := startV2Shim(t)
	etcdctl2(t, shim.URL, "mkdir", "/xw")
	out := filepath.Join(t.TempDir(), "events")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := exec.CommandContext(ctx, harness.EtcdctlBinary(t), "--endpoints", shim.URL, "exec-watch", "--recursive", "/xw", "--",
		"sh", "-c", `echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE" >> `+out)
	w.Env = append(os.Environ(), "ETCDCTL_API=2")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = w.Wait() }()
	waitRegistered(t, shim.URL, 1)
	etcdctl2(t, shim.URL, "set", "/xw/a", "1")
	want := "set /xw/a 1\n"
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if string(b) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec-watch ran with %q, want %q", b, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestV2WatchPythonEtcd: python-etcd's watch (one long poll), recursive
// watch and eternal_watch (chained waitIndex polls from history, then live).
func TestV2WatchPythonEtcd(t *testing.T) {
	e2eParallel(t)
	_, shim := startV2Shim(t)
	pythonEtcd(t, shim.URL, "python-etcd watch ok", `
import sys, threading, time, etcd
c = etcd.Client(host=sys.argv[1], port=int(sys.argv[2]), allow_reconnect=False)
first = c.write('/pw/k', 'v0').modifiedIndex
for i in range(1, 5):
    c.write('/pw/k', 'v%d' % i)
# eternal_watch from the first index: the history answers the first five
# polls at once, in order; the sixth waits for a live write.
def later(key, value):
    time.sleep(0.5)
    etcd.Client(host=sys.argv[1], port=int(sys.argv[2])).write(key, value)
threading.Thread(target=later, args=('/pw/k', 'live')).start()
got = []
for r in c.eternal_watch('/pw/k', index=first):
    got.append((r.action, r.value))
    if len(got) == 6:
        break
assert got == [('set', 'v0'), ('set', 'v1'), ('set', 'v2'), ('set', 'v3'), ('set', 'v4'), ('set', 'live')], got
threading.Thread(target=later, args=('/pw/k', 'next')).start()
r = c.watch('/pw/k', timeout=30)
assert (r.action, r.value) == ('set', 'next'), (r.action, r.value)
threading.Thread(target=later, args=('/pw/dir/sub/x', 'deep')).start()
r = c.watch('/pw/dir', recursive=True, timeout=30)
assert (r.key, r.value) == ('/pw/dir/sub/x', 'deep'), (r.key, r.value)
print('python-etcd watch ok')
`)
}

// waitRegistered waits until the shim counts n v2 waiters, so a write made
// next is one a poll without waitIndex must see.
func waitRegistered(t *testing.T, shimURL string, n int) {
	t.Helper()
	waitfor.True(t, 30*time.Second, fmt.Sprintf("the shim to count %d v2 waiters", n), func() bool {
		v, ok := scrapeValue(t, shimURL+"/metrics/shim", "etcdshim_v2_watch_waiters")
		return ok && v >= float64(n)
	})
}

// scrapeValue is an unlabelled sample's value on a text metrics page.
func scrapeValue(t *testing.T, url, name string) (float64, bool) {
	t.Helper()
	_, _, values := textPage(t, url)
	v, err := strconv.ParseFloat(values[name], 64)
	return v, err == nil
}
