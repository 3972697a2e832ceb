//go:build bench

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// TestSlowReadersMemory (issue 18) measures what 40 clients that request a
// large recursive v2 listing and never read it cost in resident memory, per
// byte of the answer, on etcd 3.4's native v2 and on the shim (on 3.7),
// side by side in one run:
//
//	go test -tags bench ./e2e -run TestSlowReadersMemory -v
//
// It asserts only that the shim holds no more per answer byte than 3.4
// (with a quarter of margin for the noise of two garbage collectors).
func TestSlowReadersMemory(t *testing.T) {
	old := harness.StartCluster(t, harness.ClusterConfig{Version: "3.4", EnableV2: true})
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7"})
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	const keys, clients = 8600, 40
	value := strings.Repeat("v", 1000)
	for _, base := range []string{old.ClientURLs()[0], shim.URL} {
		var wg sync.WaitGroup
		work := make(chan int)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v2/keys/big/k%05d", base, i), strings.NewReader("value="+value))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		for i := 0; i < keys; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	size := func(base string) int64 {
		resp, err := http.Get(base + "/v2/keys/big?recursive=true")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		return n
	}
	var out strings.Builder
	out.WriteString("| server | answer | RSS before | RSS with 40 stalled readers | per answer byte |\n|---|---|---|---|---|\n")
	perByte := map[string]float64{}
	for _, srv := range []struct {
		name, base string
		pid        int
	}{{"etcd 3.4 native v2", old.ClientURLs()[0], old.Members[0].PID()}, {"etcdshim on 3.7", shim.URL, shim.PID()}} {
		n := size(srv.base)
		time.Sleep(2 * time.Second)
		before := procStatusKB(srv.pid, "VmRSS")
		u, _ := url.Parse(srv.base)
		var conns []net.Conn
		for i := 0; i < clients; i++ {
			c, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
			fmt.Fprintf(c, "GET /v2/keys/big?recursive=true HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
			conns = append(conns, c)
		}
		time.Sleep(8 * time.Second) // answers built and stalled (below --response-write-timeout)
		after := procStatusKB(srv.pid, "VmRSS")
		for _, c := range conns {
			c.Close()
		}
		perByte[srv.name] = float64(after-before) * 1024 / float64(clients) / float64(n)
		fmt.Fprintf(&out, "| %s | %.1f MB | %d MB | %d MB | %.2f |\n", srv.name, float64(n)/1e6, before/1024, after/1024, perByte[srv.name])
	}
	t.Logf("\n%s", out.String())
	if s, o := perByte["etcdshim on 3.7"], perByte["etcd 3.4 native v2"]; s > 1.25*o {
		t.Errorf("the shim holds %.2f bytes per stalled answer byte, 3.4 %.2f", s, o)
	}
}
