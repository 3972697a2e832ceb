package soak

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// tokenTTL is the members' --auth-token-ttl in seconds. Simple tokens
// expire when unused that long, so the quiet windows (quiet) outlast it.
const tokenTTL = 3

// v2History is the shims' --v2-watch-history, 3.4's history size: the
// compaction probes and the watchers decide from it which v2 answer is the
// correct one.
const v2History = 1000

// The identities: root, the v2 clients' prefix user, the v3 clients'
// prefix user and the shims' own (read on the v2 keyspace, docs/v2.md).
const (
	appUser, appPass   = "app", "apppw"
	v3User, v3Pass     = "v3app", "v3pw"
	rootUser, rootPass = "root", "rootpw"
	shimUser, shimPass = "etcdshim", "shimpw"
)

// env is the cluster and its shims.
type env struct {
	cl *harness.Cluster
	// memberPKI is the members' (client certificates required).
	memberPKI *harness.TLSFiles
	shims     []*harness.Shim
	// files are each shim's own copies: the serving pair, the upstream
	// client pair and the --trusted-ca-file; upCA is its --cacert.
	files  []*harness.TLSFiles
	upCA   []string
	admins []string
	// clientTLS trusts the test CA and presents no certificate, as the
	// legacy clients here authenticate with passwords.
	clientTLS *tls.Config
	caFile    string
}

func (e *env) shimURLs() []string {
	out := make([]string, len(e.shims))
	for i, s := range e.shims {
		out[i] = s.URL
	}
	return out
}

// httpClient is a plain HTTP/1.1 client of the shims, as the v2 and JSON
// clients are.
func (e *env) httpClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: e.clientTLS.Clone(), MaxIdleConnsPerHost: 8}}
}

func mkdir(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyFile(t *testing.T, from, to string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// startEnv starts three 3.7 members with TLS (client certificates
// required) and a short token TTL, and one shim per member with TLS on both
// sides, its own member first in --endpoints, an admin listener, its own
// identity and every member's shim URL for /v2/members; then it creates the
// users and switches auth on.
func startEnv(t *testing.T, failbackWindow time.Duration) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{}
	e.memberPKI = harness.NewTestPKI(t, mkdir(t, filepath.Join(dir, "members"))).RequiringClientCerts()
	e.caFile = e.memberPKI.CA
	e.clientTLS = &tls.Config{RootCAs: e.memberPKI.Pool(), MinVersion: tls.VersionTLS12}
	e.cl = harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 3, TLS: e.memberPKI,
		ExtraArgs: []string{"--auth-token-ttl", strconv.Itoa(tokenTTL)}})
	urls := e.cl.ClientURLs()
	ports := make([]int, len(urls))
	var mapping []string
	for i, m := range e.cl.Members {
		ports[i] = harness.FreePort(t)
		mapping = append(mapping, fmt.Sprintf("%s=https://127.0.0.1:%d", m.Name, ports[i]))
	}
	for i := range e.cl.Members {
		d := mkdir(t, filepath.Join(dir, fmt.Sprintf("shim%d", i)))
		f := e.memberPKI.CopyTo(t, d)
		f.ClientCertAuth = false
		up := copyFile(t, f.CA, filepath.Join(d, "up-ca.pem"))
		admin := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
		eps := append([]string{urls[i]}, append(append([]string{}, urls[:i]...), urls[i+1:]...)...)
		sh := harness.StartShim(t, harness.ShimConfig{Endpoints: eps, TLS: f, Port: ports[i],
			Env: []string{"ETCDSHIM_PASSWORD=" + shimPass},
			Args: []string{
				"--cacert", up, // the harness passes the CA file; each side gets a file of its own
				"--log-level", "info",
				"--listen-admin-url", admin,
				"--failback-window", failbackWindow.String(),
				"--user", shimUser,
				"--v2-member-shim-urls", strings.Join(mapping, ","),
				"--v2-watch-history", strconv.Itoa(v2History),
				"--enable-pprof",
			}})
		e.shims = append(e.shims, sh)
		e.files = append(e.files, f)
		e.upCA = append(e.upCA, up)
		e.admins = append(e.admins, admin)
	}
	if keep := os.Getenv("SOAK_LOGS"); keep != "" {
		// Keep the shims' logs (zap JSON) for reading after the run.
		t.Cleanup(func() {
			for i, s := range e.shims {
				if b, err := os.ReadFile(s.LogPath); err == nil {
					_ = os.WriteFile(filepath.Join(keep, fmt.Sprintf("shim-m%d.log", i)), b, 0o644)
				}
			}
		})
	}
	e.setupAuth(t)
	return e
}

// setupAuth makes the users through the shim, as an operator of v2 clients
// would (v2 auth API), and the v3 prefix user with clientv3; then switches
// auth on.
func (e *env) setupAuth(t *testing.T) {
	t.Helper()
	c3, err := clientv3.New(clientv3.Config{Endpoints: e.shimURLs()[:1], TLS: e.clientTLS.Clone(), DialTimeout: 30 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := c3.UserAdd(ctx, v3User, v3Pass); return err },
		func() error { _, err := c3.RoleAdd(ctx, v3User); return err },
		func() error {
			_, err := c3.RoleGrantPermission(ctx, v3User, "v3/", clientv3.GetPrefixRangeEnd("v3/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := c3.UserGrantRole(ctx, v3User, v3User); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("v3 user setup: %v", err)
		}
	}
	hc := e.httpClient(30 * time.Second)
	defer hc.CloseIdleConnections()
	for _, s := range [][3]string{
		{"/v2/auth/users/root", `{"user":"root","password":"` + rootPass + `"}`, "201"},
		{"/v2/auth/roles/app", `{"role":"app","permissions":{"kv":{"read":["/app/*"],"write":["/app/*"]}}}`, "201"},
		{"/v2/auth/users/app", `{"user":"app","password":"` + appPass + `"}`, "201"},
		{"/v2/auth/users/app", `{"user":"app","grant":["app"]}`, "200"},
		{"/v2/auth/roles/etcdshim", `{"role":"etcdshim","permissions":{"kv":{"read":["/*"],"write":[]}}}`, "201"},
		{"/v2/auth/users/etcdshim", `{"user":"etcdshim","password":"` + shimPass + `"}`, "201"},
		{"/v2/auth/users/etcdshim", `{"user":"etcdshim","grant":["etcdshim"]}`, "200"},
		{"/v2/auth/enable", "", "200"},
	} {
		req, _ := http.NewRequest(http.MethodPut, e.shims[0].URL+s[0], strings.NewReader(s[1]))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", s[0], err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strconv.Itoa(resp.StatusCode) != s[2] {
			t.Fatalf("PUT %s: %d %s (want %s)", s[0], resp.StatusCode, b, s[2])
		}
	}
}

// rootClient is a clientv3 of root through the first shim.
func (e *env) rootClient(t *testing.T) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: e.shimURLs(), TLS: e.clientTLS.Clone(), DialTimeout: 30 * time.Second,
		Username: rootUser, Password: rootPass, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tunnels sums every shim's relayed client connections per member.
func (e *env) tunnels() string {
	per := make([]int, len(e.cl.Members))
	for _, a := range e.admins {
		rep, err := harness.AdminState(a)
		if err != nil {
			return "unavailable: " + err.Error()
		}
		for i, m := range e.cl.Members {
			per[i] += rep.Tunnels[m.ClientURL]
		}
	}
	parts := make([]string, len(per))
	for i, n := range per {
		parts[i] = fmt.Sprintf("%s=%d", e.cl.Members[i].Name, n)
	}
	return strings.Join(parts, " ")
}

// tunnelsOn is every shim's relayed client connections on member k.
func (e *env) tunnelsOn(k int) int {
	n := 0
	for _, a := range e.admins {
		if rep, err := harness.AdminState(a); err == nil {
			n += rep.Tunnels[e.cl.Members[k].ClientURL]
		}
	}
	return n
}

// logLines are the lines of a shim's log holding every one of subs.
func logLines(t *testing.T, sh *harness.Shim, subs ...string) []string {
	t.Helper()
	b, err := os.ReadFile(sh.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
next:
	for _, l := range strings.Split(string(b), "\n") {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}
