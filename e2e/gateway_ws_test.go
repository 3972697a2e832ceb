package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"github.com/etcdshim/etcdshim/rewrite/gateway/gatewaytest"
	"github.com/gorilla/websocket"
)

// A websocket watch through the shim's gateway against the member's own
// gateway (etcd's grpc-websocket-proxy), frame for frame, with a real
// websocket client (gorilla/websocket, the library the proxy itself uses).

// wsTarget is one gateway to watch through.
type wsTarget struct {
	base   string // http(s)://host:port, for the puts
	prefix string // /v3, /v3beta or /v3alpha
	tls    *tls.Config
	member *harness.Member // restarted during the watch
	token  string          // sent as etcd's wsproxy takes it: Sec-WebSocket-Protocol "Bearer, <token>"
}

func (tg wsTarget) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tg.tls}, Timeout: 10 * time.Second}
}

// post is one unary gateway call on the target's prefix, with its token.
func (tg wsTarget) post(t *testing.T, route, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", tg.base+tg.prefix+route, strings.NewReader(body))
	if tg.token != "" {
		req.Header.Set("Authorization", tg.token)
	}
	resp, raw := send(t, tg.httpClient(), req)
	var v map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(raw, &v) != nil {
		t.Fatalf("%s%s: %d %s", tg.prefix, route, resp.StatusCode, raw)
	}
	return v
}

func (tg wsTarget) put(t *testing.T, key, value string) {
	t.Helper()
	tg.post(t, "/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64s(key), b64s(value)))
}

func b64s(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// wsConn is a client socket that records canonical frames.
type wsConn struct {
	t    *testing.T
	c    *websocket.Conn
	rec  *[]string
	step string
}

// dial opens a socket on <prefix>/watch with header; it records the status.
func (tg wsTarget) dial(t *testing.T, rec *[]string, header http.Header) *wsConn {
	t.Helper()
	u := gatewaytest.WatchURL(tg.base, tg.prefix)
	d := websocket.Dialer{TLSClientConfig: tg.tls, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(u, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		*rec = append(*rec, fmt.Sprintf("dial: %d", status))
		return nil
	}
	*rec = append(*rec, fmt.Sprintf("dial: %d subprotocol=%q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Protocol")))
	w := &wsConn{t: t, c: c, rec: rec}
	t.Cleanup(func() { c.Close() })
	return w
}

func (w *wsConn) send(step, msg string) {
	w.t.Helper()
	w.step = step
	if err := w.c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		w.t.Fatalf("%s: write: %v", step, err)
	}
}

// read records the next frame, or how the socket ended.
func (w *wsConn) read() (frame string, ended bool) {
	return w.readWithin(20 * time.Second)
}

func (w *wsConn) readWithin(d time.Duration) (frame string, ended bool) {
	_ = w.c.SetReadDeadline(time.Now().Add(d))
	typ, b, err := w.c.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce):
			frame = fmt.Sprintf("closed: %d", ce.Code)
		case errors.Is(err, syscall.ECONNRESET):
			// Closed without a close frame, as 1006, but while a frame
			// the client sent was still unread on the server: the kernel
			// then resets. Which one the client sees is timing, for the
			// member's gateway and the shim alike.
			frame = "closed: 1006"
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			frame = "closed: eof"
		default:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				frame = "closed: timeout"
			} else {
				frame = "closed: " + err.Error()
			}
		}
		*w.rec = append(*w.rec, w.step+" "+frame)
		return frame, true
	}
	frame = fmt.Sprintf("%d %s", typ, canonFrame(b))
	*w.rec = append(*w.rec, w.step+" "+frame)
	return frame, false
}

// canonFrame keeps a frame's shape, its field order and its stable values:
// headers, revisions and error texts (grpc-go's words for a lost
// connection) are replaced.
func canonFrame(b []byte) string {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var out strings.Builder
	if err := canonValue(dec, &out, "", ""); err != nil {
		return "raw " + string(b)
	}
	return out.String()
}

func canonValue(dec *json.Decoder, out *strings.Builder, parent, key string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch key {
	case "header", "revision", "create_revision", "mod_revision", "compact_revision":
		out.WriteString(`"<` + key + `>"`)
		return skipRest(dec, tok)
	}
	switch d := tok.(type) {
	case json.Delim:
		if d == '{' || d == '[' {
			out.WriteRune(rune(d))
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				k := ""
				if d == '{' {
					kt, err := dec.Token()
					if err != nil {
						return err
					}
					k = kt.(string)
					fmt.Fprintf(out, "%q:", k)
				}
				if err := canonValue(dec, out, key, k); err != nil {
					return err
				}
			}
			end, err := dec.Token()
			if err != nil {
				return err
			}
			out.WriteRune(rune(end.(json.Delim)))
		}
		return nil
	}
	if parent == "error" && key == "message" {
		out.WriteString(`"<msg>"`)
		return nil
	}
	v, _ := json.Marshal(tok)
	out.Write(v)
	return nil
}

// skipRest skips the rest of a value whose first token was tok.
func skipRest(dec *json.Decoder, tok json.Token) error {
	depth := 0
	if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
		depth = 1
	}
	for depth > 0 {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

// goneCode: a member's own gateway ends the stream with Canceled or with
// Unavailable, whichever of its gRPC server's stop and its loopback
// connection's loss comes first (both seen from 3.4 and 3.7); the shim's
// stream sees Unavailable. Either is "the member went away".
var goneCode = regexp.MustCompile(`("(?:grpc_code|code|http_code|http_status)":)(?:1|14|408|503|"Request Timeout"|"Service Unavailable")([,}])`)

// wsRun says what a run covers.
type wsRun struct {
	restart bool        // restart the member during the watch
	header  http.Header // on the upgrade request
}

// runWSWatch: two watches on one socket, two events, a progress request, a
// cancel, the member restarting under the watch, a new socket after it and
// a closing handshake. It returns the canonical frames.
func runWSWatch(t *testing.T, tg wsTarget, run wsRun) []string {
	t.Helper()
	var rec []string
	k := func(s string) string { return b64s("wsdiff/" + s) }
	header := run.header
	if tg.token != "" && header == nil {
		header = http.Header{"Sec-Websocket-Protocol": {"Bearer, " + tg.token}}
	}
	w := tg.dial(t, &rec, header)
	if w == nil {
		return rec
	}
	w.send("create-a", fmt.Sprintf(`{"create_request":{"key":%q}}`, k("a")))
	if f, _ := w.read(); !strings.Contains(f, `"created":true`) || strings.Contains(f, `"canceled":true`) {
		return rec // not allowed to watch: the frame says why
	}
	tg.put(t, "wsdiff/a", "1")
	w.step = "event-1"
	w.read()
	tg.put(t, "wsdiff/a", "2")
	w.step = "event-2"
	w.read()
	w.send("create-b", fmt.Sprintf(`{"create_request":{"key":%q,"prev_kv":true}}`, k("b")))
	w.read()
	tg.put(t, "wsdiff/b", "x")
	w.step = "event-b"
	w.read()
	w.send("progress", `{"progress_request":{}}`)
	w.read()
	w.send("cancel-a", `{"cancel_request":{"watch_id":"0"}}`)
	w.read()
	// The canceled watch sees nothing: the next frame is b's.
	tg.put(t, "wsdiff/a", "3")
	tg.put(t, "wsdiff/b", "y")
	w.step = "after-cancel"
	w.read()
	if run.restart {
		tg.member.Stop(t)
		w.step = "member-stopped"
		for i := 0; i < 5; i++ {
			if _, ended := w.read(); ended {
				break
			}
			rec[len(rec)-1] = goneCode.ReplaceAllString(rec[len(rec)-1], `$1"<gone>"$2`)
		}
		tg.member.Start(t)
		tg.member.WaitHealthy(t)
		// A new socket watches again once the member is back (the shim may
		// take a health probe to trust it again: retried, not recorded).
		var after []string
		deadline := time.Now().Add(30 * time.Second)
		for {
			after = nil
			if w = tg.dial(t, &after, header); w != nil {
				w.send("after-restart", fmt.Sprintf(`{"create_request":{"key":%q}}`, k("b")))
				if f, _ := w.read(); strings.Contains(f, `"created":true`) {
					break
				}
				w.c.Close()
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		rec = append(rec, after...)
		if w == nil {
			return rec
		}
		w.rec = &rec
	}
	// The closing handshake: the server answers a close frame with one.
	w.step = "close"
	if err := w.c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
		t.Fatalf("close: %v", err)
	}
	for i := 0; i < 3; i++ {
		if _, ended := w.read(); ended {
			break
		}
	}
	return rec
}

// runWSMalformed sends a malformed first request, then a valid one, and
// records what comes back within 3 s.
func runWSMalformed(t *testing.T, tg wsTarget) []string {
	t.Helper()
	var rec []string
	w := tg.dial(t, &rec, nil)
	if w == nil {
		return rec
	}
	w.send("malformed", `{bad`)
	w.send("then-valid", fmt.Sprintf(`{"create_request":{"key":%q}}`, b64s("wsdiff/m")))
	for i := 0; i < 3; i++ {
		if _, ended := w.readWithin(3 * time.Second); ended {
			break
		}
	}
	return rec
}

// TestGatewayWebsocketDifferential: /v3 through the shim against etcd
// 3.7's own gateway, /v3beta and /v3alpha through the shim (on 3.7)
// against etcd 3.4's /v3beta, each with a member restart under the watch.
func TestGatewayWebsocketDifferential(t *testing.T) {
	e2eParallel(t)
	type pair struct {
		name           string
		refVer, refPre string
		shimPre        []string
	}
	for _, p := range []pair{
		{"v3", "3.7", "/v3", []string{"/v3"}},
		{"v3beta", "3.4", "/v3beta", []string{"/v3beta", "/v3alpha"}},
	} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			ref := harness.StartCluster(t, harness.ClusterConfig{Version: p.refVer})
			want := runWSWatch(t, wsTarget{base: ref.ClientURLs()[0], prefix: p.refPre, member: ref.Members[0]}, wsRun{restart: true})
			t.Logf("member %s %s:\n%s", p.refVer, p.refPre, strings.Join(want, "\n"))
			wantBad := runWSMalformed(t, wsTarget{base: ref.ClientURLs()[0], prefix: p.refPre})
			t.Logf("member %s %s, malformed first request:\n%s", p.refVer, p.refPre, strings.Join(wantBad, "\n"))
			for _, pre := range p.shimPre {
				cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
				shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
				got := runWSWatch(t, wsTarget{base: shim.URL, prefix: pre, member: cl.Members[0]}, wsRun{restart: true})
				compareLines(t, "shim "+pre+" vs "+p.refVer+" "+p.refPre, want, got)
				gotBad := runWSMalformed(t, wsTarget{base: shim.URL, prefix: pre})
				compareLines(t, "malformed first request: shim "+pre+" vs "+p.refVer+" "+p.refPre, wantBad, gotBad)
			}
		})
	}
}

// enableAuth adds root and turns auth on; it returns a token for root.
func enableAuth(t *testing.T, tg wsTarget) string {
	t.Helper()
	tg.post(t, "/auth/user/add", `{"name":"root","password":"pw"}`)
	tg.post(t, "/auth/role/add", `{"name":"root"}`)
	tg.post(t, "/auth/user/grant", `{"user":"root","role":"root"}`)
	tg.post(t, "/auth/enable", `{}`)
	return tg.post(t, "/auth/authenticate", `{"name":"root","password":"pw"}`)["token"].(string)
}

// TestGatewayWebsocketAuth: with auth on, the token reaches the member as
// etcd's wsproxy passes it (a "Bearer, <token>" subprotocol or a "token"
// cookie); an Authorization header on the upgrade is not passed, by either.
func TestGatewayWebsocketAuth(t *testing.T) {
	e2eParallel(t)
	ways := []struct {
		name   string
		header func(token string) http.Header
	}{
		{"none", func(string) http.Header { return http.Header{} }},
		{"authorization-header", func(tok string) http.Header { return http.Header{"Authorization": {tok}} }},
		{"subprotocol", func(tok string) http.Header { return http.Header{"Sec-Websocket-Protocol": {"Bearer, " + tok}} }},
		{"cookie", func(tok string) http.Header { return http.Header{"Cookie": {"token=" + tok}} }},
	}
	for _, api := range []struct {
		prefix, refVersion string
		// check judges one way's frames, from the reference member and
		// from the shim.
		check func(t *testing.T, way string, want, got []string)
	}{
		{"/v3", "3.7", func(t *testing.T, way string, want, got []string) {
			compareLines(t, way, want, got)
			if way == "subprotocol" && !strings.Contains(strings.Join(got, "\n"), "after-cancel") {
				t.Errorf("a token in the subprotocol did not authenticate the watch:\n%s", strings.Join(got, "\n"))
			}
		}},
		{"/v3beta", "3.4", func(t *testing.T, way string, want, got []string) {
			switch way {
			case "subprotocol", "cookie":
				// 3.4 passes "Bearer <token>" to its auth store, which
				// refuses it (Unauthenticated): no 3.4 client could watch
				// over a websocket with auth on. A 3.6+ member takes it, so
				// through the shim the watch works (docs/gateway.md).
				if !strings.Contains(strings.Join(want, "\n"), "invalid auth token") {
					t.Errorf("3.4 with a %s token:\n%s", way, strings.Join(want, "\n"))
				}
				if !strings.Contains(strings.Join(got, "\n"), "after-cancel") {
					t.Errorf("shim /v3beta with a %s token:\n%s", way, strings.Join(got, "\n"))
				}
			default:
				compareLines(t, way, want, got)
			}
		}},
	} {
		t.Run(strings.TrimPrefix(api.prefix, "/"), func(t *testing.T) {
			t.Parallel()
			ref := harness.StartCluster(t, harness.ClusterConfig{Version: api.refVersion})
			cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
			shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
			refT := wsTarget{base: ref.ClientURLs()[0], prefix: api.prefix}
			shimT := wsTarget{base: shim.URL, prefix: api.prefix}
			refT.token, shimT.token = enableAuth(t, refT), enableAuth(t, shimT)
			for _, way := range ways {
				want := runWSWatch(t, refT, wsRun{header: way.header(refT.token)})
				got := runWSWatch(t, shimT, wsRun{header: way.header(shimT.token)})
				t.Logf("%s, %s:\n%s\nshim:\n%s", way.name, api.refVersion, strings.Join(want, "\n"), strings.Join(got, "\n"))
				api.check(t, way.name, want, got)
			}
		})
	}
}

// TestGatewayWebsocketTLS: the same watch over wss, the shim and the
// member both serving TLS.
func TestGatewayWebsocketTLS(t *testing.T) {
	e2eParallel(t)
	pki := harness.NewTestPKI(t, t.TempDir())
	ref := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", TLS: pki})
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", TLS: pki})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), TLS: pki})
	want := runWSWatch(t, wsTarget{base: ref.ClientURLs()[0], prefix: "/v3", tls: pki.ClientConfig()}, wsRun{})
	got := runWSWatch(t, wsTarget{base: shim.URL, prefix: "/v3", tls: pki.ClientConfig()}, wsRun{})
	compareLines(t, "wss", want, got)
	if !strings.HasPrefix(shim.URL, "https://") || !strings.Contains(strings.Join(got, "\n"), "after-cancel") {
		t.Fatalf("no watch over wss through %s:\n%s", shim.URL, strings.Join(got, "\n"))
	}
}

// wsMemberWatchers reads the member's watcher gauge (etcd_mvcc_watcher_total
// in releases that renamed it).
func wsMemberWatchers(t testing.TB, client *http.Client, memberURL string) (int, error) {
	resp, err := client.Get(memberURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && (f[0] == "etcd_debugging_mvcc_watcher_total" || f[0] == "etcd_mvcc_watcher_total") {
			var n int
			_, err := fmt.Sscan(f[1], &n)
			return n, err
		}
	}
	return 0, fmt.Errorf("no watcher gauge on %s/metrics", memberURL)
}

// TestGatewayWebsocketRelease: closing sockets (with a close frame, or by
// dropping the connection) releases the member's watchers they held.
func TestGatewayWebsocketRelease(t *testing.T) {
	e2eParallel(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	client := &http.Client{Timeout: 5 * time.Second}
	before, err := wsMemberWatchers(t, client, cl.ClientURLs()[0])
	if err != nil {
		t.Fatal(err)
	}
	shimGoroutines := func() int {
		resp, err := client.Get(shim.URL + "/metrics/shim")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "go_goroutines" {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
		t.Fatal("no go_goroutines on /metrics/shim")
		return 0
	}
	g0 := shimGoroutines()
	const n = 20
	var mu sync.Mutex
	var conns []*websocket.Conn
	for i := 0; i < n; i++ {
		c, _, err := websocket.DefaultDialer.Dial(gatewaytest.WatchURL(shim.URL, "/v3"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		for j := 0; j < 2; j++ {
			_ = c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"create_request":{"key":%q}}`, b64s(fmt.Sprint("rel/", i, "/", j)))))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, b, err := c.ReadMessage(); err != nil || !strings.Contains(string(b), `"created":true`) {
				t.Fatalf("watch %d/%d: %v %s", i, j, err, b)
			}
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	waitWatchers := func(want int, what string) {
		waitfor.True(t, 30*time.Second, fmt.Sprintf("%d member watchers %s", want, what), func() bool {
			got, err := wsMemberWatchers(t, client, cl.ClientURLs()[0])
			return err == nil && got == want
		})
	}
	waitWatchers(before+2*n, fmt.Sprintf("with %d sockets of 2 watches", n))
	if g := shimGoroutines(); g < g0+5*n {
		t.Fatalf("shim goroutines with %d sockets open: %d, from %d", n, g, g0)
	}
	for i, c := range conns {
		if i%2 == 0 {
			_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		}
		c.Close()
	}
	waitWatchers(before, "after the sockets closed")
	// The shim's goroutines for the sockets (six each) end with them; a few
	// of its own (probes, idle connections) come and go meanwhile.
	waitfor.True(t, 30*time.Second, fmt.Sprintf("shim goroutines back within 5 of %d after %d sockets closed", g0, n),
		func() bool { return shimGoroutines() <= g0+5 })
}

// TestGatewayWebsocketOrigin: with --cors set, a browser page from another
// origin cannot open a websocket (403; etcd itself lets any Origin upgrade,
// and its proxy turns a "token" cookie into the Authorization, so a page
// could watch with its visitor's token); clients without an Origin pass.
// An unlisted Host (--host-whitelist, plain HTTP) gets 421 before that.
func TestGatewayWebsocketOrigin(t *testing.T) {
	e2eParallel(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(),
		Args: []string{"--cors", "https://ui.example", "--host-whitelist", "127.0.0.1,localhost"}})
	for _, c := range []struct {
		name, base, prefix string
		header             http.Header
		want               int
	}{
		{"no origin", shim.URL, "/v3", nil, 101},
		{"listed origin", shim.URL, "/v3", http.Header{"Origin": {"https://ui.example"}}, 101},
		{"other origin", shim.URL, "/v3", http.Header{"Origin": {"https://evil.example"}}, 403},
		{"other origin, legacy prefix", shim.URL, "/v3beta", http.Header{"Origin": {"https://evil.example"}}, 403},
		{"unlisted host", shim.URL, "/v3", http.Header{"Host": {"evil.example"}}, 421},
		// The member's own gateway checks no Origin (recorded, not required).
		{"member, other origin", cl.ClientURLs()[0], "/v3", http.Header{"Origin": {"https://evil.example"}}, 101},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := gatewaytest.UpgradeStatus(t, c.base, c.prefix, c.header); got != c.want {
				t.Errorf("status %d, want %d", got, c.want)
			}
		})
	}
}

// The sweep: what else a member's own gateway answers, asked of the member
// and of the shim in front of the same release (/v3 against 3.7) and of 3.4
// (/v3beta against the shim's /v3beta on 3.7): other methods, other content
// types, the gRPC metadata headers both ways, the server-streaming and
// bidirectional routes over plain HTTP, and a response of several MiB.

// sweepStep is one request of the sweep; route is below the prefix.
type sweepStep struct {
	name, method, route, body string
	header                    http.Header
}

var sweepSteps = []sweepStep{
	{"GET on a POST route", "GET", "/kv/range", "", nil},
	{"PUT on a POST route", "PUT", "/kv/range", `{"key":"YQ=="}`, nil},
	{"DELETE on a POST route", "DELETE", "/kv/range", "", nil},
	{"HEAD on a POST route", "HEAD", "/kv/range", "", nil},
	{"OPTIONS (CORS preflight)", "OPTIONS", "/kv/range", "", http.Header{"Origin": {"https://ui.example"}, "Access-Control-Request-Method": {"POST"}}},
	{"form content type (curl -d)", "POST", "/kv/put", `{"key":"c3dlZXAvYQ==","value":"MQ=="}`, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
	{"text/plain", "POST", "/kv/range", `{"key":"c3dlZXAvYQ=="}`, http.Header{"Content-Type": {"text/plain"}}},
	{"octet-stream and Accept: xml", "POST", "/kv/range", `{"key":"c3dlZXAvYQ=="}`, http.Header{"Content-Type": {"application/octet-stream"}, "Accept": {"application/xml"}}},
	{"no content type", "POST", "/kv/range", `{"key":"c3dlZXAvYQ=="}`, http.Header{"Content-Type": nil}},
	{"Grpc-Metadata-hasleader", "POST", "/kv/range", `{"key":"c3dlZXAvYQ=="}`, http.Header{"Grpc-Metadata-Hasleader": {"true"}}},
	{"empty body", "POST", "/kv/range", ``, nil},
	{"query string ignored", "POST", "/kv/range?key=eA==", `{"key":"c3dlZXAvYQ=="}`, nil},
	{"lease keepalive stream (one request)", "POST", "/lease/keepalive", `{"ID":"{lease}"}`, nil},
	{"lease keepalive, unknown lease", "POST", "/lease/keepalive", `{"ID":"1"}`, nil},
	{"watch over POST, with history", "POST", "/watch", `{"create_request":{"key":"c3dlZXAvYQ==","start_revision":"1"}}`, nil},
	{"large range (6 MiB of values)", "POST", "/kv/range", `{"key":"c3dlZXAvYmlnLw==","range_end":"c3dlZXAvYmlnMA=="}`, nil},
	{"maintenance/snapshot stream", "POST", "/maintenance/snapshot", `{}`, nil},
}

// sweepAnswer keeps what a client sees: the status, the content type, the
// names of the Grpc-Metadata-* answer headers, the CORS headers, and the
// body's canonical lines (a snapshot's blobs reduced to their total size).
type sweepAnswer struct {
	Status      int
	ContentType string
	Metadata    []string
	CORS        string
	Lines       []string
}

func sweep(t *testing.T, base, prefix string) []sweepAnswer {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	tg := wsTarget{base: base, prefix: prefix}
	big := strings.Repeat("x", 1<<20)
	for i := 0; i < 6; i++ {
		tg.put(t, fmt.Sprintf("sweep/big/%d", i), big)
	}
	tg.put(t, "sweep/a", "0")
	lease := tg.post(t, "/lease/grant", `{"TTL":"600"}`)["ID"].(string)
	var out []sweepAnswer
	for _, st := range sweepSteps {
		body := strings.ReplaceAll(st.body, "{lease}", lease)
		req, _ := http.NewRequest(st.method, base+prefix+st.route, strings.NewReader(body))
		if st.method == "GET" || st.method == "HEAD" || st.method == "DELETE" || st.method == "OPTIONS" {
			req.Body, req.ContentLength = nil, 0
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range st.header {
			if v == nil {
				req.Header.Del(k)
				continue
			}
			req.Header[k] = v
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if st.route == "/watch" {
			req = req.WithContext(ctx) // a watch never ends: read what comes in 5 s
		}
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", st.name, err)
		}
		a := sweepAnswer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"),
			CORS: resp.Header.Get("Access-Control-Allow-Origin") + " | " + resp.Header.Get("Access-Control-Allow-Methods")}
		for k := range resp.Header {
			if strings.HasPrefix(k, "Grpc-Metadata-") {
				a.Metadata = append(a.Metadata, k)
			}
		}
		sort.Strings(a.Metadata)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
		blob, snapFields := 0, ""
		for sc.Scan() {
			line := sc.Bytes()
			if st.route == "/maintenance/snapshot" {
				var m struct {
					Result map[string]json.RawMessage `json:"result"`
				}
				if json.Unmarshal(line, &m) == nil && m.Result["blob"] != nil {
					var b []byte
					_ = json.Unmarshal(m.Result["blob"], &b)
					blob += len(b)
					var keys []string
					for k := range m.Result {
						keys = append(keys, k)
					}
					sort.Strings(keys)
					snapFields = strings.Join(keys, ",")
					continue
				}
			}
			if len(line) > 4096 {
				// A large answer: its values' count and size, not every byte.
				var r struct {
					Kvs []struct {
						Value []byte `json:"value"`
					} `json:"kvs"`
				}
				err := json.Unmarshal(line, &r)
				n := 0
				for _, kv := range r.Kvs {
					n += len(kv.Value)
				}
				a.Lines = append(a.Lines, fmt.Sprintf("%d values, %d value bytes (%v)", len(r.Kvs), n, err))
				continue
			}
			a.Lines = append(a.Lines, canonSweep(line))
		}
		resp.Body.Close()
		cancel()
		if st.route == "/maintenance/snapshot" {
			a.Lines = append(a.Lines, fmt.Sprintf("snapshot blobs: %v, fields: %s", blob > 0, snapFields))
		}
		out = append(out, a)
	}
	return out
}

// canonSweep is canonFrame with the ids and raft fields of unary answers
// also replaced.
func canonSweep(b []byte) string {
	s := canonFrame(b)
	for _, k := range []string{"ID", "raft_term", "member_id", "cluster_id"} {
		s = regexp.MustCompile(`"`+k+`":"[0-9]+"`).ReplaceAllString(s, `"`+k+`":"<`+k+`>"`)
	}
	return s
}

// sweepAccepted are the known differences of the shim's /v3beta from 3.4
// (docs/gateway.md): 3.6+ members add a version to each snapshot message.
var sweepAccepted = map[string]bool{"/v3beta maintenance/snapshot stream": true}

func TestGatewaySweep(t *testing.T) {
	e2eParallel(t)
	for _, p := range []struct{ name, refVer, prefix string }{
		{"v3 vs 3.7", "3.7", "/v3"},
		{"v3beta vs 3.4", "3.4", "/v3beta"},
	} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			ref := harness.StartCluster(t, harness.ClusterConfig{Version: p.refVer})
			cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
			shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
			want := sweep(t, ref.ClientURLs()[0], p.prefix)
			got := sweep(t, shim.URL, p.prefix)
			for i, st := range sweepSteps {
				w, _ := json.Marshal(want[i])
				g, _ := json.Marshal(got[i])
				switch {
				case string(w) == string(g):
					t.Logf("%s: %s", st.name, g)
				case sweepAccepted[p.prefix+" "+st.name]:
					t.Logf("%s (accepted difference):\n member: %s\n shim:   %s", st.name, w, g)
				default:
					t.Errorf("%s:\n member: %s\n shim:   %s", st.name, w, g)
				}
			}
		})
	}
}

// TestGatewayWebsocketMemberFailover: in a three-member cluster, the member
// the shim prefers stops under a watch; the socket ends as the member's own
// gateway would end it (an Unavailable frame, then no close frame), and a
// new socket watches through another member while the first stays down,
// seeing a write made after the stop.
func TestGatewayWebsocketMemberFailover(t *testing.T) {
	e2eParallel(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 3})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	tg := wsTarget{base: shim.URL, prefix: "/v3beta"}
	var rec []string
	w := tg.dial(t, &rec, nil)
	if w == nil {
		t.Fatalf("dial: %v", rec)
	}
	w.send("create", fmt.Sprintf(`{"create_request":{"key":%q}}`, b64s("wsfail/a")))
	if f, _ := w.read(); !strings.Contains(f, `"created":true`) {
		t.Fatalf("create: %s", f)
	}
	cl.Members[0].Stop(t)
	w.step = "member-stopped"
	for i := 0; i < 3; i++ {
		if _, ended := w.read(); ended {
			break
		}
	}
	want := []string{
		`member-stopped 1 {"error":{"grpc_code":14,"http_code":503,"message":"<msg>","http_status":"Service Unavailable"}}`,
		`member-stopped closed: 1006`,
	}
	if got := rec[len(rec)-len(want):]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("end of the stream:\n%s\nwant:\n%s", strings.Join(rec, "\n"), strings.Join(want, "\n"))
	}
	// A new socket: retried while the shim learns the member is gone.
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec = nil
		if w = tg.dial(t, &rec, nil); w != nil {
			w.send("again", fmt.Sprintf(`{"create_request":{"key":%q}}`, b64s("wsfail/a")))
			if f, _ := w.read(); strings.Contains(f, `"created":true`) && !strings.Contains(f, `"canceled"`) {
				break
			}
			w.c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no watch through the remaining members: %s", strings.Join(rec, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	tg.put(t, "wsfail/a", "after")
	w.step = "event"
	if f, _ := w.read(); !strings.Contains(f, `"value":"`+b64s("after")+`"`) {
		t.Fatalf("event through another member: %s", f)
	}
}

// TestGatewayWebsocketLargeEvent: an event larger than the proxy's default
// 64 KiB line arrives whole in one frame, from the member's gateway and from
// the shim's.
func TestGatewayWebsocketLargeEvent(t *testing.T) {
	e2eParallel(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	value := strings.Repeat("v", 1<<20)
	for _, tg := range []wsTarget{{base: cl.ClientURLs()[0], prefix: "/v3"}, {base: shim.URL, prefix: "/v3"}, {base: shim.URL, prefix: "/v3beta"}} {
		var rec []string
		w := tg.dial(t, &rec, nil)
		if w == nil {
			t.Fatalf("%s%s: %v", tg.base, tg.prefix, rec)
		}
		w.send("create", fmt.Sprintf(`{"create_request":{"key":%q}}`, b64s("wsbig")))
		if f, _ := w.read(); !strings.Contains(f, `"created":true`) {
			t.Fatalf("create: %s", f)
		}
		tg.put(t, "wsbig", value)
		_ = w.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, b, err := w.c.ReadMessage()
		var values []string
		if err == nil {
			values, err = watchEventValues(b)
		}
		if err != nil || len(values) != 1 || values[0] != value {
			t.Fatalf("%s%s: a 1 MiB event: %v, %d bytes", tg.base, tg.prefix, err, len(b))
		}
	}
}
