package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ClusterConfig describes a cluster to start.
type ClusterConfig struct {
	// Version is "3.4", "3.5", "3.6" or "3.7".
	Version string
	// Size is the number of members (default 1).
	Size int
	// EnableV2 serves the v2 API (3.4 and 3.5 only).
	EnableV2 bool
	// TLS serves clients over https with these files (client certificates
	// are required when TLS.ClientCertAuth).
	TLS *TLSFiles
	// ExtraArgs are appended to every member's flags.
	ExtraArgs []string
}

// Cluster is a running etcd cluster.
type Cluster struct {
	Members []*Member
	cfg     ClusterConfig
}

// Member is one etcd process.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	DataDir   string
	Version   string

	cluster *Cluster
	initial string
	token   string
	started bool
	proc    *process
	logDir  string
	starts  int
}

var clusterSeq atomic.Int64

// StartCluster starts Size members and waits until all are healthy.
func StartCluster(tb testing.TB, cfg ClusterConfig) *Cluster {
	tb.Helper()
	if cfg.Size == 0 {
		cfg.Size = 1
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	c := &Cluster{cfg: cfg}
	dir := tb.TempDir()
	token := fmt.Sprintf("etcdshim-e2e-%d-%d", os.Getpid(), clusterSeq.Add(1))
	var initial []string
	for i := 0; i < cfg.Size; i++ {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, FreePort(tb)),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", FreePort(tb)),
			DataDir:   filepath.Join(dir, fmt.Sprintf("m%d.etcd", i)),
			Version:   cfg.Version,
			cluster:   c,
			token:     token,
			logDir:    dir,
		}
		initial = append(initial, m.Name+"="+m.PeerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.initial = strings.Join(initial, ",")
		m.Start(tb)
	}
	tb.Cleanup(func() {
		for _, m := range c.Members {
			if m.proc != nil {
				m.proc.kill()
			}
		}
	})
	for _, m := range c.Members {
		m.WaitHealthy(tb)
	}
	return c
}

// ClientURLs are the members' client URLs in order.
func (c *Cluster) ClientURLs() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientURL
	}
	return out
}

// LeaderStatus asks each member's Status through c and answers the index
// and member id of the one that leads: with auth on, where /metrics (what
// Cluster.Leader reads) says nothing about who c may ask, and where the id
// is what a test compares.
func (cl *Cluster) LeaderStatus(tb testing.TB, c *clientv3.Client) (int, uint64) {
	tb.Helper()
	for i, u := range cl.ClientURLs() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := c.Status(ctx, u)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i, st.Leader
		}
	}
	tb.Fatal("no member's Status says it leads")
	return -1, 0
}

// SidecarEndpoints are the endpoints of a sidecar shim on member i: its own
// client URL first (the shim prefers it), then the others in order.
func (c *Cluster) SidecarEndpoints(i int) []string {
	urls := c.ClientURLs()
	eps := append([]string{urls[i]}, urls[:i]...)
	return append(eps, urls[i+1:]...)
}

// Endpoints is ClientURLs joined by commas.
func (c *Cluster) Endpoints() string { return strings.Join(c.ClientURLs(), ",") }

func (m *Member) args() []string {
	cfg := m.cluster.cfg
	state := "new"
	if m.started {
		state = "existing"
	}
	args := []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", m.initial,
		"--initial-cluster-token", m.token,
		"--initial-cluster-state", state,
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
	}
	if m.Version == "3.4" {
		args = append(args, "--logger", "zap")
	}
	if cfg.EnableV2 && (m.Version == "3.4" || m.Version == "3.5") {
		args = append(args, "--enable-v2=true")
	}
	if t := cfg.TLS; t != nil {
		args = append(args, "--cert-file", t.ServerCert, "--key-file", t.ServerKey)
		if t.ClientCertAuth {
			args = append(args, "--trusted-ca-file", t.CA, "--client-cert-auth")
		}
	}
	return append(args, cfg.ExtraArgs...)
}

// Start starts (or restarts) the member with its version's binary.
func (m *Member) Start(tb testing.TB) {
	tb.Helper()
	if m.proc != nil && m.proc.running() {
		tb.Fatalf("member %s is already running", m.Name)
	}
	m.starts++
	log := filepath.Join(m.logDir, fmt.Sprintf("%s.%d.log", m.Name, m.starts))
	dumpOnFailure(tb, "etcd "+m.Name, log)
	m.proc = startProcess(tb, log, nil, EtcdBinary(tb, m.Version), m.args()...)
	m.started = true
}

// WaitHealthy waits until the member answers /health with 200.
func (m *Member) WaitHealthy(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := m.cluster.HTTPClient()
	err := waitHTTP(ctx, client, m.ClientURL+"/health", func(r *http.Response) bool { return r.StatusCode == http.StatusOK })
	if err != nil {
		if m.proc != nil && !m.proc.running() {
			tb.Fatalf("member %s exited: %v\n%s", m.Name, m.proc.exitErr, tail(m.proc.logPath, 30))
		}
		tb.Fatalf("member %s not healthy: %v", m.Name, err)
	}
}

// HTTPClient reaches the members (with the cluster's TLS files, if any).
func (c *Cluster) HTTPClient() *http.Client {
	tr := &http.Transport{}
	if c.cfg.TLS != nil {
		tr.TLSClientConfig = c.cfg.TLS.ClientConfig()
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// Leader is the index of the member whose /metrics says it leads (read with
// HTTPClient, so it works on a TLS cluster too).
func (c *Cluster) Leader(tb testing.TB) int {
	tb.Helper()
	hc := c.HTTPClient()
	defer hc.CloseIdleConnections()
	for i, m := range c.Members {
		resp, err := hc.Get(m.ClientURL + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "\netcd_server_is_leader 1") {
			return i
		}
	}
	tb.Fatal("no member reports etcd_server_is_leader 1")
	return -1
}

// Stop sends SIGTERM and waits for the member to exit.
func (m *Member) Stop(tb testing.TB) {
	tb.Helper()
	if m.proc != nil {
		m.proc.stop(30 * time.Second)
	}
}

// Kill sends SIGKILL and waits.
func (m *Member) Kill(tb testing.TB) {
	tb.Helper()
	if m.proc != nil {
		m.proc.kill()
	}
}

// Restart stops the member and starts it on the same data directory with
// another version's binary, as a rolling upgrade does.
func (m *Member) Restart(tb testing.TB, version string) {
	tb.Helper()
	m.Stop(tb)
	m.Version = version
	m.Start(tb)
	m.WaitHealthy(tb)
}

// LogPath is the log file of the member's current (or last) process; each
// start writes a new one.
func (m *Member) LogPath() string {
	if m.proc == nil {
		return ""
	}
	return m.proc.logPath
}

// PID is the member's process id (0 when stopped).
func (m *Member) PID() int {
	if m.proc == nil || !m.proc.running() {
		return 0
	}
	return m.proc.cmd.Process.Pid
}

// Running reports whether the member process is alive.
func (m *Member) Running() bool { return m.proc != nil && m.proc.running() }
