package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"
)

// Issue 17: with auth on, the same user through the shim's v3 gRPC tunnel
// and its /v3beta gateway gets what it gets from the member directly, and
// /health (with the Kubernetes example's probes) stays green.

// authV3Env is a 3.7 member (tokens live 3 s) behind a shim, with the users
// of the differential suite made through the shim's /v2/auth.
type authV3Env struct {
	member *harness.Cluster
	shim   *harness.Shim
	// metricsURL is the shim's --listen-metrics-urls listener.
	metricsURL string
}

func startAuthV3Env(t *testing.T) *authV3Env {
	t.Helper()
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1, ExtraArgs: []string{"--auth-token-ttl", "3"}})
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
	sh := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: []string{"--listen-metrics-urls", metricsURL}})
	e := &authV3Env{member: cl, shim: sh, metricsURL: metricsURL}
	// data first, while auth is off
	c := newClient(t, cl.ClientURLs()[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for k, v := range map[string]string{"/alice/a": "1", "/alice/b": "2", "/alicex/c": "3", "/pub/p": "4", "/secret/s": "5"} {
		if _, err := c.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	setupV2Auth(t, newAuthClient(), &authTarget{name: "shim→3.7", url: sh.URL})
	return e
}

// v3Outcome is an operation's result in comparable form: the gRPC code and
// etcd's error text, or the keys and values read.
func v3Outcome(v any, err error) string {
	if err != nil {
		return fmt.Sprintf("error %s: %s", status.Code(err), rpctypes.ErrorDesc(err))
	}
	switch r := v.(type) {
	case *clientv3.GetResponse:
		var kv []string
		for _, x := range r.Kvs {
			kv = append(kv, string(x.Key)+"="+string(x.Value))
		}
		return fmt.Sprintf("ok %d %v more=%v", r.Count, kv, r.More)
	case *clientv3.DeleteResponse:
		return fmt.Sprintf("ok deleted %d", r.Deleted)
	case *clientv3.TxnResponse:
		return fmt.Sprintf("ok succeeded=%v", r.Succeeded)
	case *clientv3.PutResponse:
		return "ok"
	}
	return fmt.Sprintf("ok %T", v)
}

// v3Ops is what each user does over gRPC.
func v3Ops(ctx context.Context, c *clientv3.Client) []string {
	var out []string
	rec := func(name string, v any, err error) { out = append(out, name+": "+v3Outcome(v, err)) }
	g, err := c.Get(ctx, "/alice/a")
	rec("get /alice/a", g, err)
	g, err = c.Get(ctx, "/alice/", clientv3.WithPrefix())
	rec("get prefix /alice/", g, err)
	g, err = c.Get(ctx, "/alice", clientv3.WithPrefix())
	rec("get prefix /alice", g, err)
	g, err = c.Get(ctx, "/alicex/c")
	rec("get /alicex/c", g, err)
	g, err = c.Get(ctx, "/secret/s")
	rec("get /secret/s", g, err)
	g, err = c.Get(ctx, "/pub/p", clientv3.WithSerializable())
	rec("get /pub/p serializable", g, err)
	g, err = c.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	rec("get everything", g, err)
	p, err := c.Put(ctx, "/alice/new", "n")
	rec("put /alice/new", p, err)
	p, err = c.Put(ctx, "/secret/new", "n")
	rec("put /secret/new", p, err)
	p, err = c.Put(ctx, "/alicex/new", "n")
	rec("put /alicex/new", p, err)
	tx, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Value("/alice/a"), "=", "1")).Then(clientv3.OpPut("/alice/t", "t")).Commit()
	rec("txn inside", tx, err)
	tx, err = c.Txn(ctx).If(clientv3.Compare(clientv3.Value("/secret/s"), "=", "5")).Then(clientv3.OpPut("/alice/t", "t")).Commit()
	rec("txn compare outside", tx, err)
	d, err := c.Delete(ctx, "/alice/new")
	rec("delete /alice/new", d, err)
	d, err = c.Delete(ctx, "/secret/", clientv3.WithPrefix())
	rec("delete prefix /secret/", d, err)
	// a watch outside the grant is cancelled with the member's error; both
	// watches answer at once, the deadline only bounds a broken one (it
	// closes the channel, so the receive cannot hang)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	wr := <-c.Watch(wctx, "/secret/", clientv3.WithPrefix(), clientv3.WithRev(1))
	wcancel()
	out = append(out, fmt.Sprintf("watch /secret/: canceled=%v err=%v events=%v", wr.Canceled, wr.Err() != nil, len(wr.Events) > 0))
	wctx, wcancel = context.WithTimeout(ctx, 20*time.Second)
	wr = <-c.Watch(wctx, "/alice/a", clientv3.WithRev(1))
	wcancel()
	out = append(out, fmt.Sprintf("watch /alice/a from rev 1: canceled=%v events=%v", wr.Canceled, len(wr.Events) > 0))
	return out
}

// TestV2AuthV3SameAsDirect: each user's gRPC and /v3beta requests through
// the shim answer as the member's own for the same user, before and after
// the member's tokens expired. The member is reset between the two runs of
// an op list (direct, then through the shim) by undoing what it wrote.
func TestV2AuthV3SameAsDirect(t *testing.T) {
	e2eParallel(t)
	e := startAuthV3Env(t)
	member, shim := e.member.ClientURLs()[0], e.shim.URL
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rootc := newClient(t, member, func(c *clientv3.Config) { c.Username, c.Password, c.Logger = "root", "rootpw", zap.NewNop() })
	reset := func() {
		for k, v := range map[string]string{"/alice/a": "1", "/alice/b": "2", "/alicex/c": "3", "/pub/p": "4", "/secret/s": "5"} {
			if _, err := rootc.Put(ctx, k, v); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"/alice/new", "/secret/new", "/alicex/new", "/alice/t"} {
			if _, err := rootc.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	// one client per identity and endpoint, kept across the token TTL
	type pair struct{ c [2]*clientv3.Client }
	clients := map[string]*pair{}
	connectErr := map[string][2]string{}
	for _, id := range authIdents {
		if id.user == "" {
			continue
		}
		p := &pair{}
		var errs [2]string
		for i, ep := range []string{member, shim} {
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Username: id.user, Password: id.pass, Logger: zap.NewNop()})
			if err != nil {
				errs[i] = "connect: " + v3Outcome(nil, err)
				continue
			}
			t.Cleanup(func() { c.Close() })
			p.c[i] = c
		}
		clients[id.name], connectErr[id.name] = p, errs
	}
	anonc := [2]*clientv3.Client{
		newClient(t, member, func(c *clientv3.Config) { c.Logger = zap.NewNop() }),
		newClient(t, shim, func(c *clientv3.Config) { c.Logger = zap.NewNop() }),
	}
	for round := 0; round < 2; round++ {
		if round == 1 {
			// every client's token expires while it idles (--auth-token-ttl 3)
			time.Sleep(5 * time.Second)
		}
		for _, id := range authIdents {
			var results [2][]string
			for i := range results {
				reset()
				var c *clientv3.Client
				if id.user == "" {
					c = anonc[i]
				} else if c = clients[id.name].c[i]; c == nil {
					results[i] = []string{connectErr[id.name][i]}
					continue
				}
				results[i] = v3Ops(ctx, c)
			}
			compareLines(t, fmt.Sprintf("round %d gRPC as %s", round, id.name), results[0], results[1])
		}

		// the JSON gateway: /v3 on the member, /v3beta (and /v3) through the shim
		for _, id := range authIdents {
			reset()
			direct := gatewayOps(t, member, "/v3", id)
			for _, prefix := range []string{"/v3beta", "/v3"} {
				reset()
				through := gatewayOps(t, shim, prefix, id)
				compareLines(t, fmt.Sprintf("round %d gateway %s as %s", round, prefix, id.name), direct, through)
			}
		}
	}
}

// compareLines fails the test with a side-by-side listing when the shim's
// lines (answers, websocket frames) differ from the member's own.
func compareLines(t *testing.T, what string, want, got []string) {
	t.Helper()
	if strings.Join(want, "\n") == strings.Join(got, "\n") {
		return
	}
	var b strings.Builder
	for i := 0; i < len(want) || i < len(got); i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		mark := "  "
		if w != g {
			mark = "≠ "
		}
		fmt.Fprintf(&b, "%s direct: %s\n   shim:   %s\n", mark, w, g)
	}
	t.Errorf("%s: the shim differs from the member:\n%s", what, b.String())
}

// gatewayOps authenticates through prefix/auth/authenticate (anonymous and
// wrong password included) and sends the token in the Authorization header.
func gatewayOps(t *testing.T, base, prefix string, id authIdent) []string {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	post := func(path, token, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", base+prefix+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		resp, raw := send(t, client, req)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	var out []string
	token := ""
	if id.user != "" {
		st, m := post("/auth/authenticate", "", fmt.Sprintf(`{"name":%q,"password":%q}`, id.user, id.pass))
		tok, _ := m["token"].(string)
		// /v3beta answers errors in 3.4's shape, with "error" next to
		// "message"; the member's /v3 has only "message": compare the text.
		errText := m["error"]
		if errText == nil {
			errText = m["message"]
		}
		out = append(out, fmt.Sprintf("authenticate: %d code=%v error=%v token=%v", st, m["code"], errText, tok != ""))
		token = tok
	}
	canon := func(st int, m map[string]any) string {
		var kvs []string
		if arr, ok := m["kvs"].([]any); ok {
			for _, x := range arr {
				kv, _ := x.(map[string]any)
				k, _ := base64.StdEncoding.DecodeString(fmt.Sprint(kv["key"]))
				v, _ := base64.StdEncoding.DecodeString(fmt.Sprint(kv["value"]))
				kvs = append(kvs, string(k)+"="+string(v))
			}
		}
		errText := m["error"]
		if errText == nil {
			errText = m["message"]
		}
		return fmt.Sprintf("%d code=%v error=%v kvs=%v succeeded=%v deleted=%v", st, m["code"], errText, kvs, m["succeeded"], m["deleted"])
	}
	for _, op := range []struct{ name, path, body string }{
		{"range /alice/a", "/kv/range", fmt.Sprintf(`{"key":%q}`, b64("/alice/a"))},
		{"range prefix /alice/", "/kv/range", fmt.Sprintf(`{"key":%q,"range_end":%q}`, b64("/alice/"), b64("/alice0"))},
		{"range /alicex/c", "/kv/range", fmt.Sprintf(`{"key":%q}`, b64("/alicex/c"))},
		{"range /secret/s", "/kv/range", fmt.Sprintf(`{"key":%q}`, b64("/secret/s"))},
		{"put /alice/new", "/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("/alice/new"), b64("n"))},
		{"put /secret/new", "/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("/secret/new"), b64("n"))},
		{"deleterange /alice/new", "/kv/deleterange", fmt.Sprintf(`{"key":%q}`, b64("/alice/new"))},
		{"deleterange /secret/s", "/kv/deleterange", fmt.Sprintf(`{"key":%q}`, b64("/secret/s"))},
		{"txn inside", "/kv/txn", fmt.Sprintf(`{"compare":[{"key":%q,"target":"VALUE","value":%q}],"success":[{"request_range":{"key":%q}}]}`, b64("/alice/a"), b64("1"), b64("/alice/b"))},
		{"txn outside", "/kv/txn", fmt.Sprintf(`{"success":[{"request_range":{"key":%q}}]}`, b64("/secret/s"))},
		{"garbage token range", "/kv/range", fmt.Sprintf(`{"key":%q}`, b64("/alice/a"))},
	} {
		tok := token
		if op.name == "garbage token range" {
			tok = "not-a-token.123"
		}
		st, m := post(op.path, tok, op.body)
		out = append(out, op.name+": "+canon(st, m))
	}
	return out
}

// TestV2AuthHealthProbes: /health is 200 with auth on, through the shim's
// client and metrics listeners, whatever credentials the request carries,
// before and after the member's tokens expired; and the Kubernetes
// example's probes (read from configs/kubernetes) are green.
func TestV2AuthHealthProbes(t *testing.T) {
	e2eParallel(t)
	e := startAuthV3Env(t)
	probes := k8sShimProbes(t)
	if len(probes) == 0 {
		t.Fatal("no probe found for the etcdshim container in configs/kubernetes")
	}
	// the example's ports: 2379 is --listen-client-urls, 2381 --listen-metrics-urls
	ports := map[int]string{2379: e.shim.URL, 2381: e.metricsURL}
	client := newAuthClient()
	creds := []struct {
		name string
		set  func(*http.Request)
	}{
		{"none", func(*http.Request) {}},
		{"root", func(r *http.Request) { r.SetBasicAuth("root", "rootpw") }},
		{"alice", func(r *http.Request) { r.SetBasicAuth("alice", "alicepw") }},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth("alice", "nope") }},
		{"unknown user", func(r *http.Request) { r.SetBasicAuth("mallory", "x") }},
		{"garbage token", func(r *http.Request) { r.Header.Set("Authorization", "garbage.token.42") }},
	}
	get := func(url string, set func(*http.Request)) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		set(req)
		resp, err := client.Do(req)
		if err != nil {
			return -1, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	for round := 0; round < 2; round++ {
		if round == 1 {
			time.Sleep(5 * time.Second) // past --auth-token-ttl 3
		}
		if st, body := get(e.member.ClientURLs()[0]+"/health", func(*http.Request) {}); st != 200 {
			t.Fatalf("the member's own /health with auth on: %d %s", st, body)
		}
		for _, base := range []string{e.shim.URL, e.metricsURL} {
			for _, c := range creds {
				for _, q := range []string{"/health", "/health?exclude=NOSPACE"} {
					if st, body := get(base+q, c.set); st != 200 || body != `{"health":"true"}` {
						t.Errorf("round %d: GET %s%s with credentials %s: %d %q, want 200 {\"health\":\"true\"} as the member answers", round, base, q, c.name, st, body)
					}
				}
			}
		}
		for _, p := range probes {
			base, ok := ports[p.port]
			if !ok {
				t.Fatalf("probe %+v: port %d is neither the client (2379) nor the metrics (2381) port of the example", p, p.port)
			}
			if p.tcp {
				conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
				if err != nil {
					t.Errorf("round %d: %s tcpSocket probe on %d: %v", round, p.kind, p.port, err)
				} else {
					conn.Close()
				}
				continue
			}
			if st, body := get(base+p.path, func(*http.Request) {}); st < 200 || st >= 400 {
				t.Errorf("round %d: %s probe GET %s on port %d (%s): %d %s — Kubernetes would fail it", round, p.kind, p.path, p.port, base, st, body)
			}
		}
	}
}

type k8sProbe struct {
	kind string // readinessProbe, livenessProbe, startupProbe
	path string
	port int
	tcp  bool
}

// k8sShimProbes reads the etcdshim container's probes from the Kubernetes
// example.
func k8sShimProbes(t *testing.T) []k8sProbe {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(harness.RepoRoot(), "configs", "kubernetes", "*.yaml"))
	var out []k8sProbe
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(fh)
		for {
			var doc struct {
				Spec struct {
					Template struct {
						Spec struct {
							Containers []map[string]any `yaml:"containers"`
						} `yaml:"spec"`
					} `yaml:"template"`
				} `yaml:"spec"`
			}
			if err := dec.Decode(&doc); err != nil {
				break
			}
			for _, c := range doc.Spec.Template.Spec.Containers {
				if c["name"] != "etcdshim" {
					continue
				}
				for _, kind := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
					pr, ok := c[kind].(map[string]any)
					if !ok {
						continue
					}
					if hg, ok := pr["httpGet"].(map[string]any); ok {
						port, _ := hg["port"].(int)
						path, _ := hg["path"].(string)
						out = append(out, k8sProbe{kind: kind, path: path, port: port})
					}
					if ts, ok := pr["tcpSocket"].(map[string]any); ok {
						port, _ := ts["port"].(int)
						out = append(out, k8sProbe{kind: kind, port: port, tcp: true})
					}
				}
			}
		}
		fh.Close()
	}
	return out
}
