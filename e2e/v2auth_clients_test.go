package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// Real v2 clients with credentials against a 3.7 member with auth on
// through the shim (issue 17), each running past the member's token TTL:
// every step must succeed (or be refused exactly as etcd 3.4 refuses it).

const authClientTTL = 3 // the member's --auth-token-ttl, seconds

// pastTokenTTL idles until every token the member issued has expired
// (simple tokens expire when unused for the TTL).
func pastTokenTTL() { time.Sleep((authClientTTL + 2) * time.Second) }

// eachShimIdentity runs run twice, as subtests: the shim without an
// identity of its own (each client's credentials serve its requests), and
// with one (--user).
func eachShimIdentity(t *testing.T, run func(t *testing.T, shimIdentity bool)) {
	t.Run("no shim identity", func(t *testing.T) { run(t, false) })
	t.Run("shim identity", func(t *testing.T) { run(t, true) })
}

// startAuthShim is a shim in front of a 3.7 member with --auth-token-ttl 3
// and the differential suite's users (root, alice rw /alice/*, bob ro),
// plus patroni (rw /service/*), made through the shim's /v2/auth.
// With shimIdentity the shim also has a v3 user of its own (--user, read
// on the v2 keyspace, the least privilege docs/v2.md asks for).
func startAuthShim(t *testing.T, shimIdentity bool) (*harness.Cluster, *harness.Shim) {
	t.Helper()
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1, ExtraArgs: []string{"--auth-token-ttl", strconv.Itoa(authClientTTL)}})
	var args, env []string
	if shimIdentity {
		args, env = []string{"--user", "etcdshim"}, []string{"ETCDSHIM_PASSWORD=shimpw"}
	}
	sh := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: args, Env: env})
	client := newAuthClient()
	if shimIdentity {
		for _, s := range [][2]string{
			{"/v2/auth/roles/etcdshim", `{"role":"etcdshim","permissions":{"kv":{"read":["/*"],"write":[]}}}`},
			{"/v2/auth/users/etcdshim", `{"user":"etcdshim","password":"shimpw"}`},
			{"/v2/auth/users/etcdshim", `{"user":"etcdshim","grant":["etcdshim"]}`},
		} {
			st, _, raw := authCall(context.Background(), client, sh.URL, authIdent{}, "PUT", s[0], s[1], "application/json")
			if st != 200 && st != 201 {
				t.Fatalf("PUT %s: %d %s", s[0], st, raw)
			}
		}
	}
	for _, s := range [][3]string{
		{"PUT", "/v2/keys/secret/s", "value=secret"},
	} {
		st, _, raw := authCall(context.Background(), client, sh.URL, authIdent{}, s[0], s[1], s[2], "application/x-www-form-urlencoded")
		if st != 201 {
			t.Fatalf("%s %s: %d %s", s[0], s[1], st, raw)
		}
	}
	for _, s := range [][2]string{
		{"/v2/auth/roles/patroni", `{"role":"patroni","permissions":{"kv":{"read":["/service/*"],"write":["/service/*"]}}}`},
		{"/v2/auth/users/patroni", `{"user":"patroni","password":"patronipw"}`},
		{"/v2/auth/users/patroni", `{"user":"patroni","grant":["patroni"]}`},
	} {
		st, _, raw := authCall(context.Background(), client, sh.URL, authIdent{}, "PUT", s[0], s[1], "application/json")
		if st != 200 && st != 201 {
			t.Fatalf("PUT %s: %d %s", s[0], st, raw)
		}
	}
	setupV2Auth(t, client, &authTarget{name: "shim→3.7", url: sh.URL})
	return cl, sh
}

// TestV2AuthEtcdctl: etcd 3.4's `ETCDCTL_API=2 etcdctl --username` set,
// get, ls, mkdir, update, watch (answered after the token TTL), rm, and
// member list as root, through the shim, with the TTL passing between steps.
func TestV2AuthEtcdctl(t *testing.T) {
	e2eParallel(t)
	eachShimIdentity(t, authEtcdctl)
}

func authEtcdctl(t *testing.T, shimIdentity bool) {
	_, shim := startAuthShim(t, shimIdentity)
	ep := shim.URL
	alice := []string{"--username", "alice:alicepw"}
	as := func(user []string, args ...string) []string { return append(append([]string{}, user...), args...) }
	start := time.Now()

	if got := etcdctl2(t, ep, as(alice, "set", "/alice/app/k", "v1")...); got != "v1" {
		t.Fatalf("set: %q", got)
	}
	if got := etcdctl2(t, ep, as(alice, "get", "/alice/app/k")...); got != "v1" {
		t.Fatalf("get: %q", got)
	}
	etcdctl2(t, ep, as(alice, "mkdir", "/alice/app/d")...)
	etcdctl2(t, ep, as(alice, "set", "/alice/app/d/x", "x")...)
	pastTokenTTL()
	// (a recursive listing of /alice itself is refused, as on 3.4: the
	// grant /alice/* covers what is below /alice, not /alice)
	etcdctl2Fails(t, ep, "The request requires user authentication", as(alice, "ls", "-r", "/alice")...)
	if got := etcdctl2(t, ep, as(alice, "ls", "-r", "--sort", "/alice/app")...); got != "/alice/app/d\n/alice/app/d/x\n/alice/app/k" {
		t.Fatalf("ls -r after the token TTL: %q", got)
	}
	etcdctl2(t, ep, as(alice, "update", "/alice/app/k", "v2")...)
	etcdctl2Fails(t, ep, "Compare failed", as(alice, "set", "--swap-with-value", "nope", "/alice/app/k", "v3")...)
	etcdctl2Fails(t, ep, "The request requires user authentication", as(alice, "get", "/secret/s")...)
	etcdctl2Fails(t, ep, "The request requires user authentication", as(alice, "set", "/secret/s", "mine")...)
	etcdctl2Fails(t, ep, "The request requires user authentication", as([]string{"--username", "bob:bobpw"}, "set", "/alice/app/k", "bob")...)
	if got := etcdctl2(t, ep, as([]string{"--username", "bob:bobpw"}, "get", "/alice/app/k")...); got != "v2" {
		t.Fatalf("bob's read: %q", got)
	}

	// watch: registered now, answered by a write after the token TTL
	out, err := harness.Etcdctl(t, []string{"ETCDCTL_API=2"}, "--endpoints", ep, "--username", "alice:alicepw", "-o", "extended", "get", "/alice/app/k")
	if err != nil {
		t.Fatalf("get -o extended: %v %s", err, out)
	}
	idx := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Modified-Index: ") {
			idx = strings.TrimPrefix(l, "Modified-Index: ")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := exec.CommandContext(ctx, harness.EtcdctlBinary(t), "--endpoints", ep, "--username", "alice:alicepw", "watch", "--after-index", idx, "/alice/app/k")
	w.Env = append(os.Environ(), "ETCDCTL_API=2")
	var wout bytes.Buffer
	w.Stdout, w.Stderr = &wout, &wout
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	pastTokenTTL()
	etcdctl2(t, ep, as(alice, "set", "/alice/app/k", "after-ttl")...)
	if err := w.Wait(); err != nil || strings.TrimSpace(wout.String()) != "after-ttl" {
		t.Fatalf("etcdctl watch across the token TTL: %v %q", err, wout.String())
	}

	etcdctl2(t, ep, as(alice, "rm", "/alice/app/d/x")...)
	etcdctl2(t, ep, as(alice, "rmdir", "/alice/app/d")...)
	etcdctl2(t, ep, as(alice, "rm", "-r", "/alice/app")...)
	etcdctl2Fails(t, ep, "Key not found", as(alice, "get", "/alice/app/k")...)
	if got := etcdctl2(t, ep, "--username", "root:rootpw", "member", "list"); !strings.Contains(got, "clientURLs="+ep) {
		t.Fatalf("member list as root: %q", got)
	}
	if got := etcdctl2(t, ep, "--username", "root:rootpw", "cluster-health"); !strings.Contains(got, "cluster is healthy") {
		t.Fatalf("cluster-health as root: %q", got)
	}
	if ran := time.Since(start); ran < 2*authClientTTL*time.Second {
		t.Fatalf("ran %v, not past the token TTL twice", ran)
	}
}

// TestV2AuthPythonEtcd: python3-etcd with username and password writes,
// reads, lists, compares-and-swaps and watches (a long poll answered after
// the token TTL) under /alice, and is refused outside it.
func TestV2AuthPythonEtcd(t *testing.T) {
	e2eParallel(t)
	eachShimIdentity(t, authPythonEtcd)
}

func authPythonEtcd(t *testing.T, shimIdentity bool) {
	_, shim := startAuthShim(t, shimIdentity)
	pythonEtcd(t, shim.URL, "python-etcd with credentials ok", `
import sys, time, threading, etcd
ttl = `+strconv.Itoa(authClientTTL)+`
c = etcd.Client(host=sys.argv[1], port=int(sys.argv[2]), username='alice', password='alicepw', allow_reconnect=False)
r = c.write('/alice/py/a', 'one')
assert c.read('/alice/py/a').value == 'one'
time.sleep(ttl + 1.5)
c.write('/alice/py/a', 'two', prevValue='one')
try:
    c.write('/alice/py/a', 'three', prevValue='nope'); raise SystemExit('test-and-set did not fail')
except etcd.EtcdCompareFailed:
    pass
c.write('/alice/py/dir/x', '1'); c.write('/alice/py/dir/y', '2')
kids = sorted(ch.key for ch in c.read('/alice/py/dir', recursive=True).children)
assert kids == ['/alice/py/dir/x', '/alice/py/dir/y'], kids
for denied in (lambda: c.read('/secret/s'), lambda: c.write('/secret/s', 'x'), lambda: c.read('/alice', recursive=True)):
    try:
        denied(); raise SystemExit('a request outside the grant succeeded')
    except etcd.EtcdInsufficientPermissions:
        pass
idx = c.read('/alice/py/a').modifiedIndex
got = {}
def watch():
    try:
        got['r'] = c.read('/alice/py/a', wait=True, waitIndex=idx + 1, timeout=30)
    except Exception as e:
        got['e'] = repr(e)
th = threading.Thread(target=watch); th.start()
time.sleep(ttl + 1.5)
c.write('/alice/py/a', 'after-ttl')
th.join(40)
assert 'r' in got and got['r'].value == 'after-ttl', got
assert c.machines, 'no machines'
assert c.members, 'no members'
assert c.leader, 'no leader'
c.delete('/alice/py', recursive=True)
try:
    c.read('/alice/py/a'); raise SystemExit('deleted key still readable')
except etcd.EtcdKeyNotFound:
    pass
print('python-etcd with credentials ok')
`)
}

// TestV2AuthPatroni: Patroni's etcd DCS with username and password (a user
// limited to /service/*) bootstraps, leads, registers, configures, and hands
// over after a replica's long poll on the leader key, the token TTL
// passing between the steps.
func TestV2AuthPatroni(t *testing.T) {
	e2eParallel(t)
	eachShimIdentity(t, authPatroni)
}

func authPatroni(t *testing.T, shimIdentity bool) {
	_, shim := startAuthShim(t, shimIdentity)
	runPython(t, "patroni dcs with credentials ok", "testdata/patroni_dcs.py", strings.TrimPrefix(shim.URL, "http://"), strconv.Itoa(authClientTTL))
}
