package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// Hostile input and resource bounds (issue 18): each test is an attack that
// once hurt the shim, run against the shim binary in front of a real member.

// countLog counts the shim's log lines containing s.
func countLog(t *testing.T, shim *harness.Shim, s string) int {
	t.Helper()
	b, err := os.ReadFile(shim.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), s)
}

// TestAcceptSurvivesDescriptorExhaustion: under RLIMIT_NOFILE=256, 300
// connections exhaust the shim's descriptors (accept fails with EMFILE);
// once they close, the shim accepts again and /health answers. The burst is
// logged once, not once per failed accept.
func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit not installed")
	}
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(shim.PID()), "--nofile=256:256").CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v %s", err, out)
	}
	addr := strings.TrimPrefix(shim.URL, "http://")
	var conns []net.Conn
	for i := 0; i < 300; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	// The kernel completes handshakes the shim cannot accept; wait until the
	// shim has run out of descriptors.
	deadline := time.Now().Add(30 * time.Second)
	for countLog(t, shim, "too many open files") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the shim never ran out of descriptors: the test proves nothing")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close()
	}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline = time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(shim.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health does not answer after the connections closed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := countLog(t, shim, "accepting client connections failed"); n > 3 {
		t.Errorf("%d log lines about failed accepts for one burst; want one (at most three)", n)
	}
}

// answer is what a differential test compares of an HTTP answer.
type answer struct {
	Status                   int
	Origin, Methods, Headers string
	Body                     string // only for refusals, which carry etcd's text
}

func ask(t *testing.T, base, method, path, host, origin, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if strings.HasPrefix(path, "/v2/") && body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{Status: resp.StatusCode, Origin: resp.Header.Get("Access-Control-Allow-Origin"),
		Methods: resp.Header.Get("Access-Control-Allow-Methods"), Headers: resp.Header.Get("Access-Control-Allow-Headers")}
	if resp.StatusCode == http.StatusMisdirectedRequest {
		a.Body = string(b)
	}
	return a
}

// TestHostWhitelistAndCORSAs34: the shim in front of a 3.7 member and a
// 3.4 member, both started with the same --host-whitelist and --cors (and
// both with the defaults), give the same status, CORS headers and refusal
// text to the same requests, on every surface the shim answers itself
// (v2, /v3beta, /health, /metrics) and on /version, passed through.
func TestHostWhitelistAndCORSAs34(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	for _, flags := range [][]string{
		{"--host-whitelist", "localhost,127.0.0.1", "--cors", "https://ok.example:8443,https://two.example:8443"},
		{},
	} {
		name := "defaults"
		if len(flags) > 0 {
			name = "set"
		}
		t.Run(name, func(t *testing.T) {
			old := harness.StartCluster(t, harness.ClusterConfig{Version: "3.4", EnableV2: true, ExtraArgs: flags})
			// The member behind the shim has the same flags: what the shim
			// passes through (here /version) is the member's answer.
			cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", ExtraArgs: flags})
			shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: flags})
			ref := old.ClientURLs()[0]
			for _, host := range []string{"evil.example", "evil.example:2379", ""} {
				for _, origin := range []string{"", "https://ok.example:8443", "https://two.example:8443", "https://evil.example:8443", "https://ok.example"} {
					for i, rq := range []struct{ method, path, body string }{
						{"PUT", "/v2/keys/hostile/k", "value=v"},
						{"GET", "/v2/keys/hostile/k", ""},
						{"OPTIONS", "/v2/keys/hostile/k", ""},
						{"POST", "/v3beta/kv/put", `{"key":"aG9zdGlsZQ==","value":"dg=="}`},
						{"POST", "/v3beta/kv/range", `{"key":"aG9zdGlsZQ=="}`},
						{"GET", "/health", ""},
						{"GET", "/version", ""},
						{"GET", "/metrics", ""},
					} {
						h := host
						want := ask(t, ref, rq.method, rq.path, strings.ReplaceAll(h, "2379", "1"), origin, rq.body)
						got := ask(t, shim.URL, rq.method, rq.path, strings.ReplaceAll(h, "2379", "1"), origin, rq.body)
						if got != want {
							t.Errorf("#%d %s %s Host=%q Origin=%q:\n  shim %+v\n  3.4  %+v", i, rq.method, rq.path, h, origin, got, want)
						}
					}
				}
			}
		})
	}
}
