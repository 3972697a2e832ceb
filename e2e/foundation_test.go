package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// etcdctl3 runs Debian's etcdctl (v3 API) against the shim and fails the
// test on error.
func etcdctl3(t *testing.T, endpoint string, args ...string) string {
	t.Helper()
	out, err := harness.Etcdctl(t, []string{"ETCDCTL_API=3"}, append([]string{"--endpoints", endpoint}, args...)...)
	if err != nil {
		t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func mustContain(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("%s: %q does not contain %q", what, got, want)
	}
}

// TestV3PassThrough runs every v3 service through the shim with etcdctl and
// with clientv3, in front of single-member 3.5, 3.6 and 3.7 and a
// three-member 3.6 cluster.
func TestV3PassThrough(t *testing.T) {
	e2eSerial(t)
	for _, tc := range []struct {
		version string
		size    int
	}{{"3.5", 1}, {"3.6", 1}, {"3.7", 1}, {"3.6", 3}} {
		t.Run(fmt.Sprintf("%s-x%d", tc.version, tc.size), func(t *testing.T) {
			t.Parallel()
			cl := harness.StartCluster(t, harness.ClusterConfig{Version: tc.version, Size: tc.size})
			shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
			t.Run("etcdctl", func(t *testing.T) { etcdctlSuite(t, shim.URL) })
			t.Run("clientv3", func(t *testing.T) { clientv3Suite(t, shim.URL) })
			// Auth last: it changes the cluster for everything after it.
			t.Run("auth", func(t *testing.T) { authSuite(t, shim.URL) })
		})
	}
}

func etcdctlSuite(t *testing.T, ep string) {
	mustContain(t, "put", etcdctl3(t, ep, "put", "foo", "bar"), "OK")
	mustContain(t, "get", etcdctl3(t, ep, "get", "foo"), "foo\nbar")
	etcdctl3(t, ep, "put", "foo2", "x")
	mustContain(t, "del", etcdctl3(t, ep, "del", "foo2"), "1")

	txn := exec.Command(harness.EtcdctlBinary(t), "--endpoints", ep, "txn")
	txn.Env = append(os.Environ(), "ETCDCTL_API=3")
	txn.Stdin = strings.NewReader("value(\"foo\") = \"bar\"\n\nput foo baz\n\nput foo nope\n\n")
	out, err := txn.CombinedOutput()
	if err != nil {
		t.Fatalf("txn: %v %s", err, out)
	}
	mustContain(t, "txn", string(out), "SUCCESS")
	mustContain(t, "get after txn", etcdctl3(t, ep, "get", "foo", "--print-value-only"), "baz")

	// watch: the stream must deliver events written after it started.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lines, stopWatch := harness.EtcdctlLines(t, []string{"ETCDCTL_API=3"}, "--endpoints", ep, "watch", "wkey")
	defer stopWatch()
	var seen []string
	for i := 0; len(seen) < 6; i++ {
		etcdctl3(t, ep, "put", "wkey", fmt.Sprintf("v%d", i))
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended early; saw %v", seen)
			}
			seen = append(seen, l)
			for len(lines) > 0 {
				seen = append(seen, <-lines)
			}
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("watch delivered %v", seen)
		}
	}
	mustContain(t, "watch", strings.Join(seen, "\n"), "PUT\nwkey\nv")

	lease := etcdctl3(t, ep, "lease", "grant", "60")
	var id string
	if _, err := fmt.Sscanf(lease, "lease %s granted", &id); err != nil {
		t.Fatalf("lease grant: %q", lease)
	}
	mustContain(t, "keep-alive", etcdctl3(t, ep, "lease", "keep-alive", "--once", id), "keepalived with TTL")
	mustContain(t, "timetolive", etcdctl3(t, ep, "lease", "timetolive", id), "granted with TTL(60s)")
	mustContain(t, "lock", etcdctl3(t, ep, "lock", "mylock", "echo", "held-the-lock"), "held-the-lock")

	elect, stopElect := harness.EtcdctlLines(t, []string{"ETCDCTL_API=3"}, "--endpoints", ep, "elect", "myelection", "proposal-1")
	var first string
	select {
	case first = <-elect:
	case <-time.After(15 * time.Second):
	}
	if !strings.HasPrefix(first, "myelection/") {
		t.Fatalf("elect: first line %q", first)
	}
	mustContain(t, "elect listen", etcdctl3(t, ep, "get", "--prefix", "myelection/", "--print-value-only"), "proposal-1")
	stopElect()

	mustContain(t, "member list", etcdctl3(t, ep, "member", "list"), "started")
	mustContain(t, "endpoint status", etcdctl3(t, ep, "endpoint", "status"), ep)
	mustContain(t, "endpoint health", etcdctl3(t, ep, "endpoint", "health"), "is healthy")

	db := filepath.Join(t.TempDir(), "snap.db")
	mustContain(t, "snapshot save", etcdctl3(t, ep, "snapshot", "save", db), "Snapshot saved")
	st, err := harness.Etcdctl(t, []string{"ETCDCTL_API=3"}, "snapshot", "status", db, "-w", "json")
	if err != nil || !strings.Contains(st, `"totalKey"`) {
		t.Fatalf("snapshot status: %v %s", err, st)
	}
}

func newClient(t *testing.T, ep string, opts ...func(*clientv3.Config)) *clientv3.Client {
	t.Helper()
	return harness.Client(t, []string{ep}, opts...)
}

func clientv3Suite(t *testing.T, ep string) {
	c := newClient(t, ep)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if _, err := c.Put(ctx, "g/a", "1"); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Value("g/a"), "=", "1")).
		Then(clientv3.OpPut("g/a", "2"), clientv3.OpGet("g/a")).Commit()
	if err != nil || !tr.Succeeded {
		t.Fatalf("txn: %v %v", tr, err)
	}
	if got := string(tr.Responses[1].GetResponseRange().Kvs[0].Value); got != "2" {
		t.Fatalf("txn get: %q", got)
	}

	wctx, wcancel := context.WithCancel(ctx)
	wch := c.Watch(wctx, "g/w", clientv3.WithPrefix())
	const events = 50
	go func() {
		for i := 0; i < events; i++ {
			_, _ = c.Put(ctx, fmt.Sprintf("g/w%d", i), "x")
		}
	}()
	got := 0
	for got < events {
		select {
		case wr := <-wch:
			if err := wr.Err(); err != nil {
				t.Fatal(err)
			}
			got += len(wr.Events)
		case <-ctx.Done():
			t.Fatalf("watch saw %d of %d events", got, events)
		}
	}
	wcancel()

	lg, err := c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := c.KeepAlive(ctx, lg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := <-ka; r == nil || r.TTL <= 0 {
		t.Fatalf("keepalive stream: %v", r)
	}
	ttl, err := c.TimeToLive(ctx, lg.ID)
	if err != nil || ttl.GrantedTTL != 30 {
		t.Fatalf("timetolive: %v %v", ttl, err)
	}
	if _, err := c.Revoke(ctx, lg.ID); err != nil {
		t.Fatal(err)
	}

	sess, err := concurrency.NewSession(c, concurrency.WithTTL(10))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	mu := concurrency.NewMutex(sess, "g/lock")
	if err := mu.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mu.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	el := concurrency.NewElection(sess, "g/elect")
	if err := el.Campaign(ctx, "me"); err != nil {
		t.Fatal(err)
	}
	if l, err := el.Leader(ctx); err != nil || string(l.Kvs[0].Value) != "me" {
		t.Fatalf("leader: %v %v", l, err)
	}
	if err := el.Resign(ctx); err != nil {
		t.Fatal(err)
	}

	ml, err := c.MemberList(ctx)
	if err != nil || len(ml.Members) == 0 {
		t.Fatalf("member list: %v %v", ml, err)
	}
	if _, err := c.Status(ctx, ep); err != nil {
		t.Fatalf("status: %v", err)
	}
	if _, err := c.AlarmList(ctx); err != nil {
		t.Fatalf("alarm list: %v", err)
	}
	rc, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n == 0 {
		t.Fatalf("snapshot stream: %d bytes, %v", n, err)
	}

	// Deadlines propagate: a lock held elsewhere makes a short Lock time out
	// with DeadlineExceeded, not hang.
	if err := mu.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	sess2, err := concurrency.NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sess2.Close()
	short, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = concurrency.NewMutex(sess2, "g/lock").Lock(short)
	scancel()
	if !errors.Is(err, context.DeadlineExceeded) && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("blocked lock with deadline: %v", err)
	}
	_ = mu.Unlock(ctx)
}

func authSuite(t *testing.T, ep string) {
	etcdctl3(t, ep, "user", "add", "root", "--new-user-password=rootpw")
	etcdctl3(t, ep, "role", "add", "app")
	etcdctl3(t, ep, "role", "grant-permission", "app", "readwrite", "app/", "--prefix")
	etcdctl3(t, ep, "user", "add", "alice", "--new-user-password=alicepw")
	etcdctl3(t, ep, "user", "grant-role", "alice", "app")
	mustContain(t, "auth enable", etcdctl3(t, ep, "auth", "enable"), "Authentication Enabled")
	defer etcdctl3(t, ep, "--user", "root:rootpw", "auth", "disable")

	mustContain(t, "authenticated put", etcdctl3(t, ep, "--user", "alice:alicepw", "put", "app/x", "1"), "OK")
	out, err := harness.Etcdctl(t, []string{"ETCDCTL_API=3"}, "--endpoints", ep, "--user", "alice:alicepw", "put", "other", "1")
	if err == nil || !strings.Contains(out, "permission denied") {
		t.Fatalf("alice wrote outside her role: %v %s", err, out)
	}
	out, err = harness.Etcdctl(t, []string{"ETCDCTL_API=3"}, "--endpoints", ep, "put", "app/y", "1")
	if err == nil || !strings.Contains(out, "user name is empty") && !strings.Contains(out, "invalid auth token") {
		t.Fatalf("anonymous write succeeded through the shim: %v %s", err, out)
	}
	// clientv3 with a username: the token travels in metadata through the tunnel.
	c := newClient(t, ep, func(c *clientv3.Config) { c.Username, c.Password = "alice", "alicepw" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "app/z", "1"); err != nil {
		t.Fatalf("clientv3 authenticated put: %v", err)
	}
}

// TestFailoverKillFirstEndpoint kills the sidecar's own member; new requests
// through the shim must succeed again within seconds.
func TestFailoverKillFirstEndpoint(t *testing.T) {
	e2eParallel(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.6", Size: 3})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: []string{"--health-interval", "200ms"}})
	c := newClient(t, shim.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, err := c.Put(ctx, "before", "1"); err != nil {
		t.Fatal(err)
	}
	cancel()
	cl.Members[0].Kill(t)
	killed := time.Now()
	var lastErr error
	for time.Since(killed) < 15*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, lastErr = c.Put(ctx, "after", "1")
		cancel()
		if lastErr == nil {
			t.Logf("writes succeed again %v after the kill", time.Since(killed).Round(time.Millisecond))
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("no successful write through the shim after killing its first endpoint: %v", lastErr)
	}
	if code := getStatus(t, nil, shim.URL+"/health"); code != http.StatusOK {
		t.Fatalf("/health %d after failover", code)
	}
}

// TestSIGTERMUnderLoad sends SIGTERM while clients write through the shim:
// calls the shim accepted finish; later ones are refused, never reset.
func TestSIGTERMUnderLoad(t *testing.T) {
	e2eParallel(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: []string{"--shutdown-timeout", "5s"}})
	var ok, refused atomic.Int64
	var mu sync.Mutex
	var bad []error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		c := newClient(t, shim.URL)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				_, err := c.Put(ctx, fmt.Sprintf("load/%d", i%100), "v")
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case status.Code(err) == codes.Unavailable && (strings.Contains(err.Error(), "connection refused") ||
					strings.Contains(err.Error(), "while dialing") || strings.Contains(err.Error(), "shutting down")):
					refused.Add(1)
				case errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded:
					refused.Add(1) // waiting for a shim that no longer listens
				default:
					mu.Lock()
					bad = append(bad, err)
					mu.Unlock()
				}
			}
		}()
	}
	waitfor.True(t, time.Minute, "100 writes through the shim before the signal", func() bool { return ok.Load() >= 100 })
	before := ok.Load()
	shim.Signal(syscall.SIGTERM)
	code := shim.Wait()
	close(stop)
	waitfor.Group(t, &wg, time.Minute, "the writers to stop")
	if code != 0 {
		t.Fatalf("shim exited %d after SIGTERM", code)
	}
	for _, err := range bad {
		t.Errorf("request failed with something other than a refusal: %v", err)
	}
	t.Logf("%d writes ok (%d before SIGTERM), %d refused after shutdown", ok.Load(), before, refused.Load())
}

// TestInvalidConfigExits2 checks the CLI's contract for bad settings.
func TestInvalidConfigExits2(t *testing.T) {
	e2eSerial(t)
	bin := harness.ShimBinary(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no endpoints", nil, "no upstream"},
		{"embedded with endpoints", []string{"--embedded", "--endpoints", "http://127.0.0.1:1"}, "cannot be used together"},
		{"bad url", []string{"--endpoints", "10.0.0.1:2379"}, "bad URL"},
		{"unreadable cert", []string{"--endpoints", "http://127.0.0.1:1", "--trusted-ca-file", "/nope"}, "not readable"},
		{"unknown flag", []string{"--no-such-flag"}, "unknown flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2; output %s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("want one line containing %q, got %q", tc.want, out)
			}
		})
	}
	yaml := filepath.Join(t.TempDir(), "shim.yaml")
	_ = os.WriteFile(yaml, []byte("endpoints: [http://127.0.0.1:1]\nendpionts: typo\n"), 0o600)
	out, err := exec.Command(bin, "--config-file", yaml).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "endpionts") {
		t.Fatalf("unknown YAML key: %v %s", err, out)
	}
	out, err = exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "etcdshim Version:") || !strings.Contains(string(out), "Go Version: go1.") {
		t.Fatalf("version: %v %s", err, out)
	}
}

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
