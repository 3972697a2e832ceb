package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"gopkg.in/yaml.v3"
)

var promoted = [][2]string{
	{"etcd_debugging_mvcc_db_total_size_in_bytes", "etcd_mvcc_db_total_size_in_bytes"},
	{"etcd_debugging_mvcc_put_total", "etcd_mvcc_put_total"},
	{"etcd_debugging_mvcc_delete_total", "etcd_mvcc_delete_total"},
	{"etcd_debugging_mvcc_txn_total", "etcd_mvcc_txn_total"},
	{"etcd_debugging_mvcc_range_total", "etcd_mvcc_range_total"},
}

// textPage scrapes url in the text format: TYPE lines per family and
// unlabelled sample values.
func textPage(t *testing.T, u string) (string, map[string]int, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, body := send(t, nil, req)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", u, resp.StatusCode, body)
	}
	types, values := map[string]int{}, map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if f := strings.Fields(l); strings.HasPrefix(l, "# TYPE ") && len(f) >= 3 {
			types[f[2]]++
		} else if len(f) == 2 && !strings.HasPrefix(l, "#") {
			values[f[0]] = f[1]
		}
	}
	return string(body), types, values
}

func promtoolProblems(t *testing.T, page string) map[string]bool {
	t.Helper()
	cmd := exec.Command("/usr/bin/promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(page)
	out, _ := cmd.CombinedOutput()
	problems := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			problems[l] = true
		}
	}
	return problems
}

// TestMetricsAliases: in front of 3.4, 3.5, 3.6 and 3.7 every promoted name,
// old and new, is on /metrics exactly once, alias values equal their source
// at the same scrape, and promtool finds nothing the member's own page lacks.
func TestMetricsAliases(t *testing.T) {
	e2eSerial(t)
	for _, v := range []string{"3.4", "3.5", "3.6", "3.7"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			cl := harness.StartCluster(t, harness.ClusterConfig{Version: v, Size: 1, EnableV2: v == "3.4"})
			shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
			c := newClient(t, shim.URL)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := 0; i < 5; i++ {
				_, _ = c.Put(ctx, fmt.Sprint("m", i), "v")
				_, _ = c.Get(ctx, "m0")
				_, _ = c.Delete(ctx, fmt.Sprint("m", i))
			}
			_, _ = c.Txn(ctx).Commit()
			page, types, values := textPage(t, shim.URL+"/metrics")
			for _, p := range promoted {
				for _, name := range p {
					if types[name] != 1 {
						t.Errorf("%s appears %d times", name, types[name])
					}
				}
				if values[p[0]] != values[p[1]] || values[p[0]] == "" {
					t.Errorf("%s = %q but %s = %q", p[0], values[p[0]], p[1], values[p[1]])
				}
			}
			for name, n := range types {
				if n != 1 {
					t.Errorf("family %s appears %d times", name, n)
				}
				if strings.HasPrefix(name, "go_") && types["etcdshim_grpc_connections_total"] == 0 {
					t.Errorf("shim metrics missing")
				}
			}
			upstream, _, _ := textPage(t, cl.ClientURLs()[0]+"/metrics")
			base := promtoolProblems(t, upstream)
			for p := range promtoolProblems(t, page) {
				if !base[p] && !strings.HasPrefix(p, "etcd_debugging_mvcc_") {
					t.Errorf("promtool: %s (not a problem of the member's own page)", p)
				}
			}
			if _, shimTypes, _ := textPage(t, shim.URL+"/metrics/shim"); shimTypes["go_goroutines"] != 1 || shimTypes["etcd_server_has_leader"] != 0 {
				t.Errorf("/metrics/shim must hold the shim's runtime metrics and not the member's")
			}
		})
	}
}

// TestMetricsWithPrometheus: a real Prometheus scraping the shim in front of
// 3.7 gets data for the legacy dashboard's and alerts' renamed names, and
// up goes to 0 when the member stops.
func TestMetricsWithPrometheus(t *testing.T) {
	e2eParallel(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	dir := t.TempDir()
	port := harness.FreePort(t)
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: etcd\n    static_configs: [{targets: ['%s']}]\n", strings.TrimPrefix(shim.URL, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command("/usr/bin/prometheus", "--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "data"), "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port))
	logf, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	prom.Stdout, prom.Stderr = logf, logf
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prom.Process.Kill(); _ = prom.Wait() })
	api := fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=", port)
	query := func(q string) []any {
		resp, err := http.Get(api + url.QueryEscape(q))
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []any `json:"result"`
			} `json:"data"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&r)
		return r.Data.Result
	}
	// v2 traffic so the v2 HTTP alert expressions have data.
	for i := 0; i < 20; i++ {
		v2do(t, shim.URL, "PUT", fmt.Sprint("/p/k", i), "value=1")
		v2do(t, shim.URL, "GET", "/p/missing", "")
	}
	exprs := legacyExprs(t)
	deadline := time.Now().Add(60 * time.Second)
	for _, e := range exprs {
		for len(query(e)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("legacy expression returned no data: %s", e)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	t.Logf("%d legacy expressions return data: %v", len(exprs), exprs)
	cl.Members[0].Stop(t)
	for {
		r := query(`up{job="etcd"} == 0`)
		if len(r) == 1 {
			break
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatal("up did not go to 0 after the member stopped")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

var thresholds = regexp.MustCompile(`\s*(>|<|==)\s*[0-9.]+\s*$`)

var renamedName = regexp.MustCompile(`etcd_debugging_mvcc_(db_total_size_in_bytes|put_total|delete_total|txn_total|range_total)|etcd_http_(received|failed)_total`)

// legacyExprs are the 3.3-era dashboard and alert expressions that use names
// the shim must supply (renamed, or gone with the v2 API).
func legacyExprs(t *testing.T) []string {
	t.Helper()
	root := filepath.Join(harness.RepoRoot(), "..", "shared", "data", "legacy-monitoring", "etcd-v3.3.0", "Documentation", "op-guide")
	var out []string
	g, err := os.ReadFile(filepath.Join(root, "grafana.json"))
	if err != nil {
		t.Skipf("legacy monitoring data not available: %v", err)
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && k == "expr" && renamedName.MatchString(s) {
					out = append(out, s)
				}
				walk(val)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var doc any
	_ = json.Unmarshal(g, &doc)
	walk(doc)
	raw, _ := os.ReadFile(filepath.Join(root, "etcd3_alert.rules.yml"))
	var rules struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if e := strings.Join(strings.Fields(r.Expr), " "); renamedName.MatchString(e) {
				// The threshold need not fire; the series it compares must exist.
				out = append(out, strings.TrimSpace(thresholds.ReplaceAllString(e, "")))
			}
		}
	}
	if len(out) < 2 {
		t.Fatalf("found only %d legacy expressions", len(out))
	}
	return out
}

// TestMetricsUpstreamDown: /metrics is 503 while the member is down.
func TestMetricsUpstreamDown(t *testing.T) {
	e2eParallel(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.6", Size: 1})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	cl.Members[0].Stop(t)
	if code := getStatus(t, nil, shim.URL+"/metrics"); code != http.StatusServiceUnavailable {
		t.Fatalf("/metrics with the member down: %d", code)
	}
	for i := 0; i < 3; i++ {
		r, _ := http.Get(shim.URL + "/metrics")
		r.Body.Close()
	}
	logs, _ := os.ReadFile(shim.LogPath)
	if n := strings.Count(string(logs), "member /metrics unreachable"); n != 1 {
		t.Fatalf("outage logged %d times, want once", n)
	}

}
