package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// coreAuth is a 3.7 member with auth on (tokens live 3 s) behind a shim,
// set up only through the shim's /v2/auth: root, and alice with the v2 role
// {"kv":{"read":["/alice/*"],"write":["/alice/*"]}}.
type coreAuth struct {
	member *harness.Cluster
	shim   *harness.Shim
	client *http.Client
}

const coreTokenTTL = 3 * time.Second

func startCoreAuth(t *testing.T, shimArgs ...string) *coreAuth {
	t.Helper()
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", ExtraArgs: []string{"--auth-token-ttl", "3"}})
	sh := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: shimArgs})
	e := &coreAuth{member: cl, shim: sh, client: &http.Client{Timeout: 30 * time.Second}}
	for _, s := range []struct{ method, path, body string }{
		{"PUT", "/v2/auth/users/root", `{"user":"root","password":"rootpw"}`},
		{"PUT", "/v2/auth/roles/alicerole", `{"role":"alicerole","permissions":{"kv":{"read":["/alice/*"],"write":["/alice/*"]}}}`},
		{"PUT", "/v2/auth/users/alice", `{"user":"alice","password":"alicepw"}`},
		{"PUT", "/v2/auth/users/alice", `{"user":"alice","grant":["alicerole"]}`},
		{"PUT", "/v2/auth/enable", ``},
	} {
		code, body := e.do(t, "", s.method, s.path, "application/json", s.body)
		if code >= 300 {
			t.Fatalf("setup %s %s: %d %s", s.method, s.path, code, body)
		}
	}
	return e
}

// do sends one request as user ("name:password", "" for anonymous).
func (e *coreAuth) do(t *testing.T, user, method, path, ctype, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.shim.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if user != "" {
		u, p, _ := strings.Cut(user, ":")
		req.SetBasicAuth(u, p)
	}
	resp, b := send(t, e.client, req)
	return resp.StatusCode, string(b)
}

func (e *coreAuth) form(t *testing.T, user, method, path string, v url.Values) (int, string) {
	t.Helper()
	return e.do(t, user, method, path, "application/x-www-form-urlencoded", v.Encode())
}

// put is a PUT as user that must answer want; another status fails the
// test.
func (e *coreAuth) put(t *testing.T, user, path string, v url.Values, want int) {
	t.Helper()
	if code, body := e.form(t, user, "PUT", path, v); code != want {
		t.Fatalf("PUT %s %s as %s: %d %s, want %d", path, v.Encode(), strings.SplitN(user, ":", 2)[0], code, body, want)
	}
}

const alice, root = "alice:alicepw", "root:rootpw"

// v2Action decodes a v2 answer's action and errorCode.
func v2Action(t *testing.T, body string) (action string, code int) {
	t.Helper()
	var v struct {
		Action    string `json:"action"`
		ErrorCode int    `json:"errorCode"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("not v2 JSON: %q", body)
	}
	return v.Action, v.ErrorCode
}

// TestV2AuthCorePrefixUser: a user limited to /alice/* does through the
// shim what 3.4 lets that role do, with only the v3 permissions the shim's
// /v2/auth made, before and after the member's tokens expire; and nothing
// outside the grant.
func TestV2AuthCorePrefixUser(t *testing.T) {
	e2eParallel(t)
	e := startCoreAuth(t)
	// The role is exactly the mapping of the v2 role: one v3 permission.
	c := newClient(t, e.member.ClientURLs()[0], func(c *clientv3.Config) { c.Username, c.Password = "root", "rootpw" })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rr, err := c.RoleGet(ctx, "alicerole")
	if err != nil || len(rr.Perm) != 1 || string(rr.Perm[0].Key) != "/alice/" {
		t.Fatalf("alicerole: %v %v", rr, err)
	}
	if _, err := c.Put(ctx, "/other", "root's"); err != nil {
		t.Fatal(err)
	}
	type step struct {
		method, path string
		form         url.Values
		code         int
		action       string
		errCode      int
	}
	steps := func(round int) []step {
		r := fmt.Sprint(round)
		return []step{
			{"PUT", "/v2/keys/alice/b" + r, url.Values{"value": {"1"}}, 201, "set", 0},
			{"GET", "/v2/keys/alice/b" + r, nil, 200, "get", 0},
			{"GET", "/v2/keys/alice/b" + r + "?quorum=true", nil, 200, "get", 0},
			{"PUT", "/v2/keys/alice/b" + r, url.Values{"value": {"2"}, "prevValue": {"1"}}, 200, "compareAndSwap", 0},
			{"PUT", "/v2/keys/alice/b" + r, url.Values{"value": {"3"}, "prevValue": {"nope"}}, 412, "", 101},
			{"PUT", "/v2/keys/alice/b" + r, url.Values{"value": {"4"}, "prevExist": {"true"}}, 200, "update", 0},
			{"PUT", "/v2/keys/alice/c" + r, url.Values{"value": {"x"}, "prevExist": {"false"}}, 201, "create", 0},
			{"DELETE", "/v2/keys/alice/c" + r + "?prevValue=x", nil, 200, "compareAndDelete", 0},
			{"DELETE", "/v2/keys/alice/b" + r, nil, 200, "delete", 0},
			{"GET", "/v2/keys/alice/b" + r, nil, 404, "", 100},
			{"PUT", "/v2/keys/alice/sub" + r + "/deep/x", url.Values{"value": {"1"}}, 201, "set", 0},
			{"PUT", "/v2/keys/alice/sub" + r + "/y", url.Values{"value": {"1"}, "ttl": {"100"}}, 201, "set", 0},
			{"PUT", "/v2/keys/alice/sub" + r + "/y", url.Values{"ttl": {"200"}, "refresh": {"true"}, "prevExist": {"true"}}, 200, "update", 0},
			{"GET", "/v2/keys/alice/sub" + r + "?recursive=true&sorted=true", nil, 200, "get", 0},
			{"GET", "/v2/keys/alice/sub" + r + "/missing/z", nil, 404, "", 100},
			{"POST", "/v2/keys/alice/q" + r, url.Values{"value": {"job"}}, 201, "create", 0},
			{"PUT", "/v2/keys/alice/d" + r, url.Values{"dir": {"true"}}, 201, "set", 0},
			{"DELETE", "/v2/keys/alice/d" + r + "?dir=true", nil, 200, "delete", 0},
			{"DELETE", "/v2/keys/alice/sub" + r + "?recursive=true", nil, 200, "delete", 0},
			// 3.4 checks the path as written: "/alice/" is inside "/alice/*".
			{"GET", "/v2/keys/alice/", nil, 200, "get", 0},
			{"GET", "/v2/keys/alice/?recursive=true", nil, 200, "get", 0},
			// Outside the grant, as 3.4 refuses them.
			{"GET", "/v2/keys/alice", nil, 401, "", 110},
			{"GET", "/v2/keys/other", nil, 401, "", 110},
			{"PUT", "/v2/keys/other", url.Values{"value": {"x"}}, 401, "", 110},
			{"GET", "/v2/keys/alice?recursive=true", nil, 401, "", 110},
			{"PUT", "/v2/keys/alice", url.Values{"value": {"x"}}, 401, "", 110},
			{"DELETE", "/v2/keys/alice?recursive=true", nil, 401, "", 110},
		}
	}
	play := func(round int) {
		for i, s := range steps(round) {
			path := s.path
			var code int
			var body string
			if s.form != nil {
				code, body = e.form(t, alice, s.method, path, s.form)
			} else {
				code, body = e.do(t, alice, s.method, path, "", "")
			}
			action, ec := v2Action(t, body)
			if code != s.code || action != s.action || ec != s.errCode {
				t.Errorf("round %d step %d %s %s: got %d %s, want %d action %q errorCode %d", round, i, s.method, path, code, body, s.code, s.action, s.errCode)
			}
		}
	}
	play(1)
	time.Sleep(coreTokenTTL + time.Second) // every cached token has expired
	play(2)
	// The shim wrote nothing outside the grant: no global action key.
	g, err := c.Get(ctx, "/_etcdshim_action")
	if err != nil || len(g.Kvs) != 0 {
		t.Fatalf("global action key: %v %v", g, err)
	}
	// A v2 wildcard never reached the root: /other is untouched.
	if g, err := c.Get(ctx, "/other"); err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "root's" {
		t.Fatalf("/other: %v %v", g, err)
	}
}

// TestV2AuthCoreWatch: long-poll and streaming watches of alice see her
// events with the right actions, across token expiry; a watch outside her
// grant is refused.
func TestV2AuthCoreWatch(t *testing.T) {
	e2eParallel(t)
	e := startCoreAuth(t, "--user", "root:rootpw")
	// What 3.4 shows anyone, whatever the credentials, is asked as the
	// shim's own user (etcd 3.6+ lists members only to a user).
	for _, user := range []string{"", "alice:wrong", alice} {
		for _, p := range []string{"/v2/members", "/v2/machines", "/v2/stats/self", "/v2/auth/enable"} {
			if code, body := e.do(t, user, "GET", p, "", ""); code != 200 {
				t.Errorf("GET %s as %q: %d %s", p, user, code, body)
			}
		}
	}
	e.put(t, alice, "/v2/keys/alice/w", url.Values{"value": {"0"}}, 201)
	longPollsAcrossExpiry(t, e, "")
	// A stream outlives the token: events after expiry still arrive.
	req, _ := http.NewRequest("GET", e.shim.URL+"/v2/keys/alice/s?wait=true&stream=true&recursive=true", nil)
	req.SetBasicAuth("alice", "alicepw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for i := 0; i < 2; i++ {
		e.put(t, alice, fmt.Sprintf("/v2/keys/alice/s/k%d", i), url.Values{"value": {"v"}}, 201)
		if !lines.Scan() {
			t.Fatalf("stream ended: %v", lines.Err())
		}
		if a, _ := v2Action(t, lines.Text()); a != "set" {
			t.Fatalf("stream event %d: %s", i, lines.Text())
		}
		time.Sleep(coreTokenTTL + time.Second)
	}
	// The role loses its read permission while the stream is open: the
	// next event is not delivered and the stream ends; her next GET is
	// refused (GETs with credentials are the member's to answer).
	if code, body := e.do(t, root, "PUT", "/v2/auth/roles/alicerole", "application/json",
		`{"role":"alicerole","revoke":{"kv":{"read":["/alice/*"]}}}`); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	e.put(t, root, "/v2/keys/alice/s/secret", url.Values{"value": {"after the revoke"}}, 201)
	if lines.Scan() {
		t.Fatalf("an event reached alice after her read permission was revoked: %s", lines.Text())
	}
	if code, body := e.do(t, alice, "GET", "/v2/keys/alice/s/secret", "", ""); code != 401 {
		t.Fatalf("GET after the revoke: %d %s", code, body)
	}
	if code, body := e.do(t, root, "PUT", "/v2/auth/roles/alicerole", "application/json",
		`{"role":"alicerole","grant":{"kv":{"read":["/alice/*"]}}}`); code != 200 {
		t.Fatalf("grant back: %d %s", code, body)
	}
	// Outside the grant: refused before waiting, as 3.4 does.
	if code, body := e.do(t, alice, "GET", "/v2/keys/other?wait=true", "", ""); code != 401 {
		t.Fatalf("watch outside the grant: %d %s", code, body)
	}
	if code, body := e.do(t, alice, "GET", "/v2/keys/alice?wait=true&recursive=true", "", ""); code != 401 {
		t.Fatalf("recursive watch above the grant: %d %s", code, body)
	}
}

// TestV2AuthCoreWatchWithoutIdentity: with auth on and no --user the hub
// cannot follow the keyspace; a client that brings credentials still gets
// its watch (an upstream watch of its own, with its own rights), with the
// right actions, from a waitIndex too; an anonymous one is refused as 3.4

// longPollsAcrossExpiry runs two rounds, each past the member's token TTL,
// of alice's long poll on /alice/w woken by her CAS from value round to
// round+1 (the key must hold "0").
func longPollsAcrossExpiry(t *testing.T, e *coreAuth, label string) {
	t.Helper()
	for round := 0; round < 2; round++ {
		got := make(chan string, 1)
		go func() {
			_, body := e.do(t, alice, "GET", "/v2/keys/alice/w?wait=true", "", "")
			got <- body
		}()
		waitWatchers(t, e, 1, got)
		e.put(t, alice, "/v2/keys/alice/w", url.Values{"value": {fmt.Sprint(round + 1)}, "prevValue": {fmt.Sprint(round)}}, 200)
		select {
		case body := <-got:
			if a, ec := v2Action(t, body); a != "compareAndSwap" || ec != 0 || !strings.Contains(body, `"value":"`+fmt.Sprint(round+1)+`"`) {
				t.Fatalf("round %d long poll%s: %s", round, label, body)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: the long poll did not wake", round)
		}
		time.Sleep(coreTokenTTL + time.Second)
	}
}

// refuses it. Once auth is off again, the hub serves watches.
func TestV2AuthCoreWatchWithoutIdentity(t *testing.T) {
	e2eParallel(t)
	e := startCoreAuth(t)
	// Auth was switched on after the hub began following the keyspace:
	// its watch goes on, but the shim may not read the store index.
	e.put(t, alice, "/v2/keys/alice/pre", url.Values{"value": {"0"}}, 201)
	pre := make(chan string, 1)
	go func() {
		_, body := e.do(t, alice, "GET", "/v2/keys/alice/pre?wait=true", "", "")
		pre <- body
	}()
	waitWatchers(t, e, 1, pre)
	e.put(t, alice, "/v2/keys/alice/pre", url.Values{"value": {"1"}, "prevExist": {"true"}}, 200)
	select {
	case body := <-pre:
		if a, _ := v2Action(t, body); a != "update" {
			t.Fatalf("watch while the hub's watch predates auth: %s", body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the watch did not wake")
	}
	// At the next restart of the member the hub loses its watch.
	e.member.Members[0].Stop(t)
	e.member.Members[0].Start(t)
	e.member.Members[0].WaitHealthy(t)
	// The shim sees the member back at its next health probe.
	for deadline := time.Now().Add(20 * time.Second); ; {
		code, body := e.form(t, alice, "PUT", "/v2/keys/alice/w", url.Values{"value": {"0"}})
		if code == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("put after the member restart: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	longPollsAcrossExpiry(t, e, " without an identity")
	// From a waitIndex: the member's history, read as alice.
	_, body := e.do(t, alice, "GET", "/v2/keys/alice/w", "", "")
	var cur struct {
		Node struct{ ModifiedIndex uint64 }
	}
	_ = json.Unmarshal([]byte(body), &cur)
	code, body := e.do(t, alice, "GET", fmt.Sprintf("/v2/keys/alice/w?wait=true&waitIndex=%d", cur.Node.ModifiedIndex), "", "")
	if a, _ := v2Action(t, body); code != 200 || a != "compareAndSwap" || !strings.Contains(body, `"value":"2"`) {
		t.Fatalf("watch from waitIndex %d: %d %s", cur.Node.ModifiedIndex, code, body)
	}
	if code, body := e.do(t, "", "GET", "/v2/keys/alice/w?wait=true", "", ""); code != 401 {
		t.Fatalf("anonymous watch: %d %s", code, body)
	}
	if code, body := e.do(t, alice, "GET", "/v2/keys/other?wait=true", "", ""); code != 401 {
		t.Fatalf("watch outside the grant: %d %s", code, body)
	}
	if code, body := e.do(t, root, "DELETE", "/v2/auth/enable", "", ""); code != 200 {
		t.Fatalf("auth disable: %d %s", code, body)
	}
	// The hub follows the keyspace again within its retry interval: a
	// watch from an index before its history is then answered at once
	// with 401 (cleared), as 3.4 answers it, instead of 300.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := e.do(t, "", "GET", "/v2/keys/alice/w?wait=true&waitIndex=1", "", "")
		if _, ec := v2Action(t, body); code == 400 && ec == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub did not resume after auth was switched off: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	got := make(chan string, 1)
	go func() {
		_, body := e.do(t, "", "GET", "/v2/keys/alice/w?wait=true", "", "")
		got <- body
	}()
	for {
		if code, body := e.form(t, "", "PUT", "/v2/keys/alice/w", url.Values{"value": {"x"}}); code >= 300 {
			t.Fatalf("put after auth disable: %d %s", code, body)
		}
		select {
		case body := <-got:
			if a, _ := v2Action(t, body); a != "set" {
				t.Fatalf("watch after auth disable: %s", body)
			}
			return
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatal("no watch event after auth was switched off")
		}
	}
}

func waitWatchers(t *testing.T, e *coreAuth, n int, answered <-chan string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, body := e.do(t, "", "GET", "/metrics/shim", "", "")
		for _, l := range strings.Split(body, "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "etcdshim_v2_watch_waiters" {
				if v, _ := strconv.ParseFloat(f[1], 64); int(v) >= n {
					return
				}
			}
		}
		select {
		case body := <-answered:
			t.Fatalf("the watch was answered before any write: %s", body)
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("fewer than %d watchers registered", n)
}

// TestV2AuthCoreClusterAndHealth: /v2/members, /v2/machines, /v2/stats and
// /v2/auth as root keep working once the member's tokens have expired, and
// /health answers 200 with auth on, with or without credentials.
func TestV2AuthCoreClusterAndHealth(t *testing.T) {
	e2eParallel(t)
	e := startCoreAuth(t)
	paths := []string{"/v2/members", "/v2/machines", "/v2/stats/self", "/v2/stats/store", "/v2/auth/users", "/v2/auth/roles/alicerole", "/v2/keys/"}
	for round := 0; round < 2; round++ {
		for _, p := range paths {
			if code, body := e.do(t, root, "GET", p, "", ""); code != 200 {
				t.Errorf("round %d GET %s as root: %d %s", round, p, code, body)
			}
		}
		for _, user := range []string{"", root, alice, "alice:wrong"} {
			if code, body := e.do(t, user, "GET", "/health", "", ""); code != 200 || !strings.Contains(body, `"health":"true"`) {
				t.Errorf("round %d /health as %q: %d %s", round, user, code, body)
			}
		}
		time.Sleep(coreTokenTTL + time.Second)
	}
}

// TestV2AuthCoreV3 : alice through /v3beta (token header) and v3 gRPC gets
// through the shim what she gets from the member directly.
func TestV2AuthCoreV3(t *testing.T) {
	e2eParallel(t)
	e := startCoreAuth(t)
	e.put(t, alice, "/v2/keys/alice/v", url.Values{"value": {"1"}}, 201)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	grpcResult := func(ep string) string {
		c := newClient(t, ep, func(c *clientv3.Config) { c.Username, c.Password = "alice", "alicepw" })
		var out []string
		for _, k := range []string{"/alice/v", "/other", "/alice"} {
			g, err := c.Get(ctx, k)
			if err != nil {
				out = append(out, k+": "+rpctypes.ErrorDesc(err))
				continue
			}
			out = append(out, fmt.Sprintf("%s: %d keys", k, len(g.Kvs)))
		}
		_, err := c.Put(ctx, "/other", "x")
		out = append(out, fmt.Sprint("put /other: ", err))
		return strings.Join(out, "; ")
	}
	direct, through := grpcResult(e.member.ClientURLs()[0]), grpcResult(e.shim.URL)
	if direct != through || !strings.Contains(direct, "/alice/v: 1 keys") {
		t.Fatalf("gRPC: direct %q, through the shim %q", direct, through)
	}
	gateway := func(base, prefix string) string {
		post := func(path, token, body string) (int, string) {
			req, _ := http.NewRequest("POST", base+prefix+path, strings.NewReader(body))
			if token != "" {
				req.Header.Set("Authorization", token)
			}
			resp, b := send(t, nil, req)
			return resp.StatusCode, string(b)
		}
		_, auth := post("/auth/authenticate", "", `{"name":"alice","password":"alicepw"}`)
		var tok struct{ Token string }
		_ = json.Unmarshal([]byte(auth), &tok)
		if tok.Token == "" {
			t.Fatalf("%s%s authenticate: %s", base, prefix, auth)
		}
		var out []string
		for _, k := range []string{"/alice/v", "/other"} {
			code, body := post("/kv/range", tok.Token, fmt.Sprintf(`{"key":%q}`, base64.StdEncoding.EncodeToString([]byte(k))))
			out = append(out, fmt.Sprintf("%s %d %v", k, code, strings.Contains(body, `"kvs"`)))
		}
		return strings.Join(out, "; ")
	}
	// 3.7 serves /v3 only; the shim serves /v3beta on top of it.
	if d, s := gateway(e.member.ClientURLs()[0], "/v3"), gateway(e.shim.URL, "/v3beta"); d != s || !strings.Contains(d, "/alice/v 200 true") {
		t.Fatalf("gateway: direct /v3 %q, shim /v3beta %q", d, s)
	}
}
