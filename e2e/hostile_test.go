package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
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
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"github.com/etcdshim/etcdshim/rewrite/gateway/gatewaytest"
	"github.com/gorilla/websocket"
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
	e2eSerial(t)
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
	resp, b := send(t, &http.Client{Timeout: 10 * time.Second}, req)
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
	e2eSerial(t)
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

// peakRSS is a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	kb := procStatusKB(pid, "VmHWM")
	if kb == 0 {
		t.Fatalf("no VmHWM for pid %d", pid)
	}
	return kb << 10
}

// procStatusKB reads a kB field (VmRSS, VmHWM) of /proc/<pid>/status.
func procStatusKB(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

type v2Answer struct {
	Status    int
	Action    string
	Key       string
	Value     string
	ErrorCode int
	Cause     string
}

func deepDo(t *testing.T, base, method, key, form string) v2Answer {
	t.Helper()
	req, _ := http.NewRequest(method, base+"/v2/keys"+key, strings.NewReader(form))
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %d-byte key: %v", method, len(key), err)
	}
	defer resp.Body.Close()
	var body struct {
		Action string `json:"action"`
		Node   struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"node"`
		ErrorCode int    `json:"errorCode"`
		Cause     string `json:"cause"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return v2Answer{resp.StatusCode, body.Action, body.Node.Key, body.Node.Value, body.ErrorCode, body.Cause}
}

// TestDeepV2Keys: 200-level keys work through the shim in front of 3.7
// (default --max-txn-ops) as on 3.4; 10,000-level keys get 209 naming the
// limit, three at once, without the shim's memory growing with the square
// of the depth (it once peaked at 2.2 GB).
func TestDeepV2Keys(t *testing.T) {
	e2eSerial(t)
	ref, shim := startV2Reference(t)
	deepKey := "/deep" + strings.Repeat("/a", 199)
	for _, step := range []struct{ method, key, form string }{
		{"PUT", deepKey, "value=v"},
		{"GET", deepKey, ""},
		{"PUT", deepKey + "/b", "value=x"},                      // 104: a file on the path
		{"PUT", "/deep" + strings.Repeat("/a", 100), "value=x"}, // 102: a directory
		{"PUT", deepKey, "value=w&prevValue=v"},
		{"PUT", deepKey, "value=w&prevExist=false"}, // 105
		{"DELETE", deepKey, ""},
		{"GET", deepKey, ""}, // 100
		{"PUT", deepKey + "/c", "dir=true"},
		{"DELETE", "/deep", "recursive=true"},
	} {
		want := deepDo(t, ref, step.method, step.key, step.form)
		got := deepDo(t, shim.URL, step.method, step.key, step.form)
		// Error causes name a key; index values differ between stores.
		if got != want {
			t.Errorf("%s %d levels %q:\n  shim %+v\n  3.4  %+v", step.method, strings.Count(step.key, "/"), step.form, got, want)
		}
	}

	before := peakRSS(t, shim.PID())
	huge := "/x" + strings.Repeat("/a", 10000)
	errs := make(chan v2Answer, 3)
	for i := 0; i < 3; i++ {
		go func() { errs <- deepDo(t, shim.URL, "PUT", huge, "value=v") }()
	}
	for i := 0; i < 3; i++ {
		a := waitfor.Recv(t, errs, time.Minute, "the answers to 10,000-level requests")
		if a.Status != http.StatusBadRequest || a.ErrorCode != 209 || !strings.Contains(a.Cause, "--v2-max-key-depth") {
			t.Fatalf("10,000 levels: %+v; want 400 with code 209 naming --v2-max-key-depth", a)
		}
	}
	// Ceiling: each request is 20 KB; the quadratic transaction was 200 MB.
	if grown := peakRSS(t, shim.PID()) - before; grown > 64<<20 {
		t.Errorf("peak RSS grew by %d MiB for three 10,000-level requests", grown>>20)
	}
}

// TestNoInternalAddresses: with its member gone, the shim's v2 errors,
// /v3beta errors and the pass-through 502 say "upstream member
// unavailable" and never the member's address; the log keeps it.
func TestNoInternalAddresses(t *testing.T) {
	e2eSerial(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	cl.Members[0].Kill(t)
	addr := strings.TrimPrefix(cl.ClientURLs()[0], "http://")
	port := addr[strings.LastIndex(addr, ":")+1:]
	client := &http.Client{Timeout: 30 * time.Second}
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/v2/keys/x?quorum=true", ""},
		{"PUT", "/v2/keys/x", "value=v"},
		{"POST", "/v3beta/kv/range", `{"key":"eA=="}`},
		{"POST", "/v3/kv/range", `{"key":"eA=="}`},
		{"GET", "/some/path/the/member/answers", ""},
	} {
		req, _ := http.NewRequest(rq.method, shim.URL+rq.path, strings.NewReader(rq.body))
		if strings.HasPrefix(rq.path, "/v2/") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, b := send(t, client, req)
		if resp.StatusCode < 400 || strings.Contains(string(b), port) || strings.Contains(string(b), "127.0.0.1") || !strings.Contains(string(b), "upstream member unavailable") {
			t.Errorf("%s %s: %d %s", rq.method, rq.path, resp.StatusCode, b)
		}
	}
	if countLog(t, shim, port) == 0 {
		t.Error("the log does not keep the member's address")
	}
}

// TestLegacyTableTrustworthy: with auth on, /debug/legacy lists a user only
// once that user authenticated (a refused password or a claimed name is not
// listed), stays small under 200 requests with 500 KB user agents, and
// keeps the real entries under a flood of 1,001 distinct anonymous agents.
// It answers loopback clients and carries no CORS header.
func TestLegacyTableTrustworthy(t *testing.T) {
	e2eSerial(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
	ep := cl.ClientURLs()[0]
	etcdctl3(t, ep, "user", "add", "root", "--new-user-password=rootpw")
	etcdctl3(t, ep, "user", "add", "mallory", "--new-user-password=malpw")
	mustContain(t, "auth enable", etcdctl3(t, ep, "auth", "enable"), "Authentication Enabled")
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(agent, user, pass string) int {
		req, _ := http.NewRequest("GET", shim.URL+"/v2/keys/?quorum=true", nil)
		req.Header.Set("User-Agent", agent)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("good-client/1.0", "root", "rootpw"); c != 200 {
		t.Fatalf("root: %d", c)
	}
	if c := get("bad-password/1.0", "mallory", "wrong"); c == 200 {
		t.Fatal("a wrong password was accepted")
	}
	get("claims-a-name/1.0", "nosuchuser", "x")
	huge := strings.Repeat("u", 500<<10)
	for i := 0; i < 200; i++ {
		get(fmt.Sprint(i)+huge, "", "")
	}
	for i := 0; i < 1001; i++ {
		get(fmt.Sprint("flood-", i), "", "")
	}
	req, _ := http.NewRequest("GET", shim.URL+"/debug/legacy", nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, body := send(t, client, req)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("/debug/legacy: %d, CORS %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if len(body) > 2<<20 {
		t.Fatalf("/debug/legacy is %d bytes (once 100 MB for this traffic)", len(body))
	}
	var rep struct {
		Clients []struct{ UserAgent, User string } `json:"clients"`
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for _, c := range rep.Clients {
		if c.User != "" {
			users[c.User] = c.UserAgent
		}
	}
	if users["root"] != "good-client/1.0" {
		t.Errorf("the authenticated user is missing: %v", users)
	}
	for _, u := range []string{"mallory", "nosuchuser"} {
		if _, ok := users[u]; ok {
			t.Errorf("%s is listed as a user without authenticating", u)
		}
	}
}

// TestHugeParameters: huge values, query strings, keys and bodies get the
// same status (and v2 error code) from the shim as from etcd 3.4, except
// where SECURITY.md says why not, and the shim's memory stays bounded.
func TestHugeParameters(t *testing.T) {
	e2eSerial(t)
	ref, shim := startV2Reference(t)
	client := &http.Client{Timeout: 60 * time.Second}
	type result struct {
		Status, Code int
	}
	send := func(base, method, path, ctype string, body string) result {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := client.Do(req)
		if err != nil {
			return result{Status: -1}
		}
		defer resp.Body.Close()
		var e struct {
			ErrorCode int `json:"errorCode"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return result{resp.StatusCode, e.ErrorCode}
	}
	form := "application/x-www-form-urlencoded"
	b64 := func(n int) string { return strings.Repeat("QUFB", n/4) }
	before := peakRSS(t, shim.PID())
	// shim is set where the shim's answer differs from 3.4's, on purpose
	// (SECURITY.md, "Bounds").
	for _, tc := range []struct {
		name, method, path, ctype, body string
		shim                            *result
	}{
		// 3.4 resets the connection; the shim answers.
		{"v2 value of 900 KB in the query", "PUT", "/v2/keys/huge1?value=" + strings.Repeat("v", 900<<10), "", "", &result{201, 0}},
		{"v2 query of 2 MB", "PUT", "/v2/keys/huge2?value=" + strings.Repeat("v", 2<<20), "", "", &result{431, 0}},
		{"v2 value of 1 MB in the body", "PUT", "/v2/keys/huge3", form, "value=" + strings.Repeat("v", 1<<20), nil},
		// 3.4's v2 store took it; the member's 1.5 MiB request limit refuses it.
		{"v2 value of 2 MB in the body", "PUT", "/v2/keys/huge4", form, "value=" + strings.Repeat("v", 2<<20), &result{500, 300}},
		{"v2 prevValue of 1 MB", "PUT", "/v2/keys/huge3", form, "value=x&prevValue=" + strings.Repeat("w", 1<<20), nil},
		{"v2 key of 16 KB", "PUT", "/v2/keys/" + strings.Repeat("k", 16<<10), form, "value=x", nil},
		// past --v2-max-key-bytes (64 KiB)
		{"v2 key of 100 KB", "PUT", "/v2/keys/" + strings.Repeat("k", 100<<10), form, "value=x", &result{400, 209}},
		{"v3beta put of 1 MB", "POST", "/v3beta/kv/put", "application/json", `{"key":"aHVnZQ==","value":"` + b64(1<<20) + `"}`, nil},
		{"v3beta put of 2 MB", "POST", "/v3beta/kv/put", "application/json", `{"key":"aHVnZQ==","value":"` + b64(2<<20) + `"}`, nil},
		{"v3beta range with a 100 KB key", "POST", "/v3beta/kv/range", "application/json", `{"key":"` + b64(100<<10) + `"}`, nil},
	} {
		got := send(shim.URL, tc.method, tc.path, tc.ctype, tc.body)
		if tc.shim != nil {
			if got != *tc.shim {
				t.Errorf("%s: shim %+v, want %+v", tc.name, got, *tc.shim)
			}
			continue
		}
		if want := send(ref, tc.method, tc.path, tc.ctype, tc.body); got != want {
			t.Errorf("%s: shim %+v, 3.4 %+v", tc.name, got, want)
		}
	}
	if grown := peakRSS(t, shim.PID()) - before; grown > 128<<20 {
		t.Errorf("peak RSS grew by %d MiB", grown>>20)
	}
}

// TestTLSClassificationBound: a TLS client that negotiates h2 and sends
// 32 MiB of frames without ever sending request headers is closed after a
// bounded read, with one log line; the shim's peak RSS barely moves (it
// once buffered everything: 29 MB sent, 90 MB more memory).
func TestTLSClassificationBound(t *testing.T) {
	e2eSerial(t)
	pki := harness.NewTestPKI(t, t.TempDir())
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), TLS: pki})
	before := peakRSS(t, shim.PID())
	tc := pki.ClientConfig()
	tc.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", strings.TrimPrefix(shim.URL, "https://"), tc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frames := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
	ping := []byte("\x00\x00\x08\x06\x00\x00\x00\x00\x00" + "12345678")
	chunk := make([]byte, 0, 64<<10)
	for len(chunk)+len(ping) <= cap(chunk) {
		chunk = append(chunk, ping...)
	}
	sent := 0
	if _, err := c.Write(frames); err != nil {
		t.Fatal(err)
	}
	_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for sent < 32<<20 {
		n, err := c.Write(chunk)
		sent += n
		if err != nil {
			break // closed by the shim: what the test wants
		}
	}
	if sent >= 32<<20 {
		t.Errorf("the shim took all %d MiB without request headers", sent>>20)
	}
	deadline := time.Now().Add(10 * time.Second)
	for countLog(t, shim, "classification bound") == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := countLog(t, shim, "classification bound"); n != 1 {
		t.Errorf("%d log lines about the bound, want 1", n)
	}
	if grown := peakRSS(t, shim.PID()) - before; grown > 16<<20 {
		t.Errorf("peak RSS grew by %d MiB", grown>>20)
	}
}

// TestWebsocketMessageBound: over wss, one 128 MiB websocket message on
// the watch route. grpc-websocket-proxy (the member's gateway too) reads a
// message whole before passing it on, so the shim once held all of it. Now
// the socket ends with close 1009 once the message passes
// --max-request-bytes, before its payload is read, and the shim's peak RSS
// barely moves; the next socket is served.
func TestWebsocketMessageBound(t *testing.T) {
	e2eSerial(t)
	pki := harness.NewTestPKI(t, t.TempDir())
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), TLS: pki})
	dialer := websocket.Dialer{TLSClientConfig: pki.ClientConfig(), HandshakeTimeout: 10 * time.Second}
	url := gatewaytest.WatchURL(shim.URL, "/v3")
	before := peakRSS(t, shim.PID())

	conn, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 128 << 20
	sent := gatewaytest.SendOversized(conn, size)
	if tooBig, err := gatewaytest.ClosedTooBig(conn, 60*time.Second); !tooBig {
		t.Fatalf("the socket ended with %v, want close 1009 (message too big)", err)
	}
	conn.Close()
	if n := <-sent; n >= size {
		t.Errorf("the shim read all %d MiB of the message", n>>20)
	}
	if grown := peakRSS(t, shim.PID()) - before; grown > 32<<20 {
		t.Errorf("peak RSS grew by %d MiB", grown>>20)
	}

	// A well-behaved watch on a new socket.
	ok, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	gatewaytest.CreateWatch(t, ok, "a")
}
