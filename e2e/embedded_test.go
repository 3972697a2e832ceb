package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/etcdshim/etcdshim/e2e/harness"
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
