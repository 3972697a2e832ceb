package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// startV2Shim is a shim in front of a single 3.7 member (no v2 at all).
func startV2Shim(t *testing.T) (*harness.Cluster, *harness.Shim) {
	t.Helper()
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1})
	return cl, harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
}

// startV2Reference starts what the differential tests compare: a 3.4
// member with v2 on (ref, its client URL) and a shim in front of a 3.7
// member.
func startV2Reference(t *testing.T) (ref string, shim *harness.Shim) {
	t.Helper()
	old := harness.StartCluster(t, harness.ClusterConfig{Version: "3.4", EnableV2: true})
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
	return old.ClientURLs()[0], harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
}

// newClientV2 is a go.etcd.io/etcd/client/v2 client of ep.
func newClientV2(t *testing.T, ep string) clientv2.Client {
	t.Helper()
	c, err := clientv2.New(clientv2.Config{Endpoints: []string{ep}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func etcdctl2(t *testing.T, ep string, args ...string) string {
	t.Helper()
	out, err := harness.Etcdctl(t, []string{"ETCDCTL_API=2"}, append([]string{"--endpoints", ep}, args...)...)
	if err != nil {
		t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func etcdctl2Fails(t *testing.T, ep, want string, args ...string) {
	t.Helper()
	out, err := harness.Etcdctl(t, []string{"ETCDCTL_API=2"}, append([]string{"--endpoints", ep}, args...)...)
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("etcdctl %s: want failure with %q, got %v %s", strings.Join(args, " "), want, err, out)
	}
}

// TestV2Etcdctl drives the shim with etcd 3.4's own v2 etcdctl.
func TestV2Etcdctl(t *testing.T) {
	e2eParallel(t)
	_, shim := startV2Shim(t)
	ep := shim.URL
	if got := etcdctl2(t, ep, "set", "/app/name", "shim"); got != "shim" {
		t.Fatalf("set: %q", got)
	}
	if got := etcdctl2(t, ep, "get", "/app/name"); got != "shim" {
		t.Fatalf("get: %q", got)
	}
	etcdctl2(t, ep, "mk", "/app/new", "1")
	etcdctl2Fails(t, ep, "Key already exists", "mk", "/app/new", "2")
	etcdctl2(t, ep, "mkdir", "/app/empty")
	etcdctl2(t, ep, "setdir", "/app/dir2")
	etcdctl2(t, ep, "set", "/app/dir2/leaf", "x")
	if got := etcdctl2(t, ep, "ls", "-r", "--sort", "/app"); got != "/app/dir2\n/app/dir2/leaf\n/app/empty\n/app/name\n/app/new" {
		t.Fatalf("ls -r: %q", got)
	}
	etcdctl2(t, ep, "update", "/app/new", "2")
	etcdctl2Fails(t, ep, "Key not found", "update", "/app/missing", "2")
	etcdctl2(t, ep, "updatedir", "--ttl", "60", "/app/empty")
	etcdctl2(t, ep, "set", "--swap-with-value", "2", "/app/new", "3")
	etcdctl2Fails(t, ep, "Compare failed", "set", "--swap-with-value", "nope", "/app/new", "4")
	out, err := harness.Etcdctl(t, []string{"ETCDCTL_API=2"}, "--endpoints", ep, "-o", "extended", "get", "/app/new")
	if err != nil {
		t.Fatalf("get -o extended: %v %s", err, out)
	}
	var idx string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Modified-Index: ") {
			idx = strings.TrimPrefix(l, "Modified-Index: ")
		}
	}
	etcdctl2(t, ep, "set", "--swap-with-index", idx, "/app/new", "5")
	etcdctl2Fails(t, ep, "Compare failed", "set", "--swap-with-index", "1", "/app/new", "6")
	etcdctl2(t, ep, "set", "--ttl", "30", "/app/ttl", "v")
	ext, _ := harness.Etcdctl(t, []string{"ETCDCTL_API=2"}, "--endpoints", ep, "-o", "extended", "get", "/app/ttl")
	if !strings.Contains(ext, "TTL: 30") && !strings.Contains(ext, "TTL: 29") {
		t.Fatalf("ttl key: %s", ext)
	}
	etcdctl2(t, ep, "rm", "/app/name")
	etcdctl2Fails(t, ep, "Key not found", "get", "/app/name")
	etcdctl2Fails(t, ep, "Directory not empty", "rmdir", "/app/dir2")
	etcdctl2(t, ep, "rmdir", "/app/empty")
	etcdctl2(t, ep, "rm", "-r", "/app")
	etcdctl2Fails(t, ep, "Key not found", "ls", "/app")
	if got := etcdctl2(t, ep, "member", "list"); !strings.Contains(got, "clientURLs="+ep) {
		t.Fatalf("member list does not advertise the shim: %q", got)
	}
	if got := etcdctl2(t, ep, "cluster-health"); !strings.Contains(got, "cluster is healthy") {
		t.Fatalf("cluster-health: %q", got)
	}
}

// TestV2GoClient uses go.etcd.io/etcd/client/v2's KeysAPI through the shim.
func TestV2GoClient(t *testing.T) {
	e2eParallel(t)
	_, shim := startV2Shim(t)
	c := newClientV2(t, shim.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Sync(ctx); err != nil {
		t.Fatalf("sync via /v2/members: %v", err)
	}
	if eps := c.Endpoints(); len(eps) != 1 || eps[0] != shim.URL {
		t.Fatalf("synced endpoints %v, want the shim only", eps)
	}
	k := clientv2.NewKeysAPI(c)
	r, err := k.Set(ctx, "/go/a", "1", nil)
	if err != nil || r.Action != "set" || r.Node.Value != "1" {
		t.Fatalf("set: %+v %v", r, err)
	}
	if _, err := k.Create(ctx, "/go/a", "2"); !clientv2.IsKeyNotFound(err) && !isCode(err, 105) {
		t.Fatalf("create existing: %v", err)
	}
	r, err = k.Update(ctx, "/go/a", "2")
	if err != nil || r.PrevNode.Value != "1" {
		t.Fatalf("update: %+v %v", r, err)
	}
	r, err = k.Set(ctx, "/go/a", "3", &clientv2.SetOptions{PrevValue: "2"})
	if err != nil || r.Action != "compareAndSwap" {
		t.Fatalf("cas value: %+v %v", r, err)
	}
	r, err = k.Set(ctx, "/go/a", "4", &clientv2.SetOptions{PrevIndex: r.Node.ModifiedIndex})
	if err != nil || r.Action != "compareAndSwap" || r.Node.Value != "4" {
		t.Fatalf("cas index: %+v %v", r, err)
	}
	if _, err := k.Set(ctx, "/go/a", "5", &clientv2.SetOptions{PrevIndex: 1}); !isCode(err, 101) {
		t.Fatalf("failed cas: %v", err)
	}
	r, err = k.Set(ctx, "/go/ttl", "t", &clientv2.SetOptions{TTL: 20 * time.Second})
	if err != nil || r.Node.TTL != 20 {
		t.Fatalf("ttl: %+v %v", r, err)
	}
	if _, err := k.Set(ctx, "/go/ttl", "", &clientv2.SetOptions{TTL: 20 * time.Second, Refresh: true, PrevExist: clientv2.PrevExist}); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := k.Set(ctx, "/go/dir", "", &clientv2.SetOptions{Dir: true}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := 0; i < 3; i++ {
		r, err := k.CreateInOrder(ctx, "/go/queue", "job", nil)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, r.Node.Key)
	}
	g, err := k.Get(ctx, "/go/queue", &clientv2.GetOptions{Sort: true})
	if err != nil || len(g.Node.Nodes) != 3 {
		t.Fatalf("queue: %+v %v", g, err)
	}
	for i, n := range g.Node.Nodes {
		if n.Key != names[i] {
			t.Fatalf("queue not FIFO: %s at %d, want %s", n.Key, i, names[i])
		}
	}
	g, err = k.Get(ctx, "/go", &clientv2.GetOptions{Recursive: true, Sort: true})
	if err != nil || len(g.Node.Nodes) != 4 {
		t.Fatalf("recursive get: %+v %v", g, err)
	}
	if _, err := k.Delete(ctx, "/go/a", &clientv2.DeleteOptions{PrevValue: "4"}); err != nil {
		t.Fatalf("cad: %v", err)
	}
	if _, err := k.Delete(ctx, "/go", &clientv2.DeleteOptions{Recursive: true}); err != nil {
		t.Fatalf("recursive delete: %v", err)
	}
	if _, err := k.Get(ctx, "/go", nil); !clientv2.IsKeyNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
}

func isCode(err error, code int) bool {
	e, ok := err.(clientv2.Error)
	return ok && e.Code == code
}

// TestV2PythonEtcd runs Debian's python3-etcd against the shim.
func TestV2PythonEtcd(t *testing.T) {
	e2eParallel(t)
	_, shim := startV2Shim(t)
	pythonEtcd(t, shim.URL, "python-etcd ok", `
import sys, etcd
c = etcd.Client(host=sys.argv[1], port=int(sys.argv[2]), allow_reconnect=False)
c.write('/py/a', 'one')
assert c.read('/py/a').value == 'one'
c.write('/py/a', 'two', prevValue='one')
try:
    c.write('/py/a', 'three', prevValue='nope'); raise SystemExit('test-and-set did not fail')
except etcd.EtcdCompareFailed:
    pass
r = c.read('/py/a'); r.value = 'four'; c.update(r)
assert c.read('/py/a').value == 'four'
c.write('/py/dir/x', '1'); c.write('/py/dir/y', '2')
kids = sorted(ch.key for ch in c.read('/py/dir', recursive=True).children)
assert kids == ['/py/dir/x', '/py/dir/y'], kids
c.delete('/py/a')
try:
    c.read('/py/a'); raise SystemExit('deleted key still readable')
except etcd.EtcdKeyNotFound:
    pass
assert c.machines, 'no machines'
print('python-etcd ok', c.machines)
`)
}

// runPython runs Debian's /usr/bin/python3 (the python3 first on PATH may
// lack python3-etcd and patroni) and fails the test unless it exits 0 and
// prints want.
func runPython(t *testing.T, want string, args ...string) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", args...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("python3 (want %q): %v\n%s", want, err, out)
	}
}

// pythonEtcd runs a python-etcd script given the endpoint's host and port
// as its arguments.
func pythonEtcd(t *testing.T, endpoint, want, script string) {
	t.Helper()
	host, port, _ := strings.Cut(strings.TrimPrefix(endpoint, "http://"), ":")
	runPython(t, want, "-c", script, host, port)
}

// TestV2V3SharedKeyspace: v3 clients read what v2 clients wrote and the reverse.
func TestV2V3SharedKeyspace(t *testing.T) {
	e2eParallel(t)
	_, shim := startV2Shim(t)
	etcdctl2(t, shim.URL, "set", "/shared/from-v2", "hello")
	c3 := newClient(t, shim.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := c3.Get(ctx, "/shared/from-v2")
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "hello" {
		t.Fatalf("v3 read of a v2 write: %v %v", g, err)
	}
	if _, err := c3.Put(ctx, "/shared/from-v3", "world"); err != nil {
		t.Fatal(err)
	}
	if got := etcdctl2(t, shim.URL, "get", "/shared/from-v3"); got != "world" {
		t.Fatalf("v2 read of a v3 write: %q", got)
	}
	if got := etcdctl2(t, shim.URL, "ls", "--sort", "/shared"); got != "/shared/from-v2\n/shared/from-v3" {
		t.Fatalf("listing mixes both: %q", got)
	}
	// The v2 directory marker is a recognisable v3 key: the path with a trailing slash.
	g, err = c3.Get(ctx, "/shared/", clientv3.WithKeysOnly())
	if err != nil || len(g.Kvs) != 1 {
		t.Fatalf("directory marker: %v %v", g, err)
	}
}
