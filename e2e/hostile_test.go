package e2e

import (
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
