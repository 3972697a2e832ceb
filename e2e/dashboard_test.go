package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// TestPrometheusRules checks configs/prometheus with promtool: the rules
// parse, and their unit tests (etcdshim-rules.test.yaml: no healthy member,
// failing member scrapes, legacy traffic returning after it had stopped)
// pass.
func TestPrometheusRules(t *testing.T) {
	dir := filepath.Join(harness.RepoRoot(), "configs", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "etcdshim-rules.yaml"},
		{"test", "rules", "etcdshim-rules.test.yaml"},
		{"check", "config", "prometheus.yaml"},
	} {
		cmd := exec.Command("/usr/bin/promtool", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s: %s", strings.Join(args, " "), strings.Join(strings.Fields(string(out)), " "))
	}
}

// TestDashboardQueries: every panel query of the Grafana dashboard
// (configs/grafana/etcdshim-migration.json) returns data from a real
// Prometheus that scrapes a shim carrying v2, /v3beta and v3 traffic, and
// the rules load there.
func TestDashboardQueries(t *testing.T) {
	e2eParallel(t)
	var dash struct {
		Panels []struct {
			Type    string
			Title   string
			Targets []struct {
				Expr string
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "configs", "grafana", "etcdshim-migration.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}

	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	target := strings.TrimPrefix(shim.URL, "http://")

	dir := t.TempDir()
	rules := filepath.Join(harness.RepoRoot(), "configs", "prometheus", "etcdshim-rules.yaml")
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: etcd
    static_configs: [{targets: [%q]}]
  - job_name: etcdshim
    metrics_path: /metrics/shim
    static_configs: [{targets: [%q]}]
`, rules, target, target)
	cfgPath := filepath.Join(dir, "prometheus.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	promURL := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
	promLog, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	prom := exec.Command("/usr/bin/prometheus", "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+strings.TrimPrefix(promURL, "http://"))
	prom.Stdout, prom.Stderr = promLog, promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(promLog.Name())
			t.Logf("prometheus log:\n%s", tailLines(string(b), 30))
		}
	})

	// Traffic on every surface the dashboard shows, until the end of the
	// test: v2 writes, cached and missing GETs, /v3beta, v3 through the
	// tunnel.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	hc := &http.Client{Timeout: 5 * time.Second}
	v3 := newClient(t, shim.URL)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			do := func(method, path, body string) {
				req, _ := http.NewRequestWithContext(ctx, method, shim.URL+path, strings.NewReader(body))
				if body != "" && method != "POST" {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				if resp, err := hc.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			do("PUT", "/v2/keys/dash/k"+strconv.Itoa(i%10), "value=v"+strconv.Itoa(i))
			do("GET", "/v2/keys/dash/k1", "")
			do("GET", "/v2/keys/dash/missing", "")
			do("POST", "/v3beta/kv/range", `{"key":"Zm9v"}`)
			_, _ = v3.Put(ctx, "foo", "bar")
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	query := func(expr string) ([]float64, error) {
		resp, err := hc.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(expr))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Error  string
			Data   struct {
				Result []struct {
					Value [2]any
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return nil, err
		}
		if r.Status != "success" {
			return nil, fmt.Errorf("%s", r.Error)
		}
		var vals []float64
		for _, s := range r.Data.Result {
			str, _ := s.Value[1].(string)
			v, _ := strconv.ParseFloat(str, 64)
			vals = append(vals, v)
		}
		return vals, nil
	}
	// Prometheus is up, has scraped both jobs for a while, and loaded the rules.
	deadline := time.Now().Add(60 * time.Second)
	for {
		up, err := query(`sum(up{job=~"etcd|etcdshim"}) == 2 and on() count_over_time(up{job="etcdshim"}[1m]) > 10`)
		if err == nil && len(up) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not scrape the shim: %v %v", up, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	resp, err := hc.Get(promURL + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, alert := range []string{"EtcdshimNoHealthyMember", "EtcdshimMemberScrapeFailing", "EtcdshimLegacyTrafficReturned"} {
		if !strings.Contains(string(body), `"name":"`+alert+`"`) {
			t.Errorf("Prometheus did not load the rule %s: %s", alert, tailLines(string(body), 5))
		}
	}

	substitute := strings.NewReplacer("$__rate_interval", "10s", "$job", "etcdshim", "$instance", ".*")
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			expr := substitute.Replace(tg.Expr)
			vals, err := query(expr)
			switch {
			case err != nil:
				t.Errorf("panel %q: %s: %v", p.Title, expr, err)
			case len(vals) == 0:
				t.Errorf("panel %q: no data for %s", p.Title, expr)
			case allNaN(vals):
				t.Errorf("panel %q: only NaN for %s", p.Title, expr)
			default:
				t.Logf("panel %q: %d series, first %v", p.Title, len(vals), vals[0])
			}
		}
	}
	if queries < 15 {
		t.Fatalf("only %d queries in the dashboard", queries)
	}
}

func allNaN(vals []float64) bool {
	for _, v := range vals {
		if !math.IsNaN(v) {
			return false
		}
	}
	return true
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
