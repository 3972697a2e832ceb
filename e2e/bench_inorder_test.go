//go:build bench

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// inOrderSection: in-order POSTs into one directory from 50 concurrent
// clients (issue 22), etcd 3.4's native v2 against the shim, on one member
// (one shim) and on three members (one shim, and three shims with the
// clients spread over them as over 3.4's three members). POSTs into one
// directory take turns within a shim and race across shims, so this is the
// shim's worst case for in-order keys. Every answer must be 201; the
// section fails on any other.
func inOrderSection(t *testing.T, out *strings.Builder, v34one *harness.Member, one *harness.Cluster, shim *harness.Shim) {
	var v34three, three *harness.Cluster
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		v34three = harness.StartCluster(t, harness.ClusterConfig{Version: "3.4", Size: 3, EnableV2: true})
	}()
	go func() {
		defer wg.Done()
		three = harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 3, ExtraArgs: []string{"--quota-backend-bytes", "8589934592"}})
	}()
	wg.Wait()
	if v34three == nil || three == nil {
		t.FailNow()
	}
	urls := three.ClientURLs()
	var shims []string
	var shimPIDs []int
	for i := range urls {
		eps := three.SidecarEndpoints(i)
		s := harness.StartShim(t, harness.ShimConfig{Endpoints: eps, Args: []string{"--log-level", "warn"}})
		defer s.Stop(t)
		shims = append(shims, s.URL)
		shimPIDs = append(shimPIDs, s.PID())
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	post := func(name string, targets ...string) func() sample {
		dir := "/bench-inorder/" + strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "").Replace(name)
		return func() sample {
			s, errs, first := postLoad(targets, dir, 50, benchDur())
			if errs > 0 {
				failed.Add(int64(errs))
				firstErr.CompareAndSwap(nil, first)
			}
			return s
		}
	}
	const (
		v34a   = "etcd 3.4 native v2, 1 member"
		shimA  = "etcdshim, 1-member 3.7"
		v34b   = "etcd 3.4 native v2, 3 members, clients spread"
		shimB1 = "etcdshim, one shim on a 3-member 3.7"
		shimB3 = "etcdshim, three shims on a 3-member 3.7, clients spread"
	)
	cmd := rerun("inorder") + " (50 goroutines POSTing value=x to <url>/v2/keys/<dir>, one directory per arm)"
	oneRes := alternate([]arm{
		{name: v34a, run: post(v34a, v34one.ClientURL)},
		{name: shimA, run: post(shimA, shim.URL), pid: shim.PID()},
	})
	out.WriteString(table("v2 in-order POSTs into one directory, 50 clients, one member", cmd, v34a, []string{v34a, shimA}, oneRes))
	threeRes := alternate([]arm{
		{name: v34b, run: post(v34b, v34three.ClientURLs()...)},
		{name: shimB1, run: post(shimB1, shims[0]), pid: shimPIDs[0]},
		{name: shimB3, run: post(shimB3, shims...)},
	})
	out.WriteString(table("v2 in-order POSTs into one directory, 50 clients, three members", cmd, v34b, []string{v34b, shimB1, shimB3}, threeRes))
	if n := failed.Load(); n != 0 {
		t.Errorf("%d in-order POSTs were not answered 201; first: %v", n, firstErr.Load())
	}
	fmt.Fprintf(out, "\nEvery POST of the two tables above was answered 201 (%d were not).\n", failed.Load())
}

// postLoad POSTs into dir from n goroutines, goroutine i through
// targets[i%len(targets)], for d; it returns the sample and how many
// answers were not 201.
func postLoad(targets []string, dir string, n int, d time.Duration) (sample, int, string) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	var (
		mu    sync.Mutex
		lat   []time.Duration
		ops   int
		errs  int
		first string
		wg    sync.WaitGroup
	)
	body := url.Values{"value": {"x"}}.Encode()
	start := time.Now()
	stop := start.Add(d)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(target string) {
			defer wg.Done()
			var mine []time.Duration
			bad, firstBad := 0, ""
			for time.Now().Before(stop) {
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodPost, target+"/v2/keys"+dir, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := hc.Do(req)
				if err != nil {
					bad++
					if firstBad == "" {
						firstBad = err.Error()
					}
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					bad++
					if firstBad == "" {
						firstBad = fmt.Sprintf("%d %s", resp.StatusCode, b)
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			ops += len(mine)
			errs += bad
			if first == "" {
				first = firstBad
			}
			mu.Unlock()
		}(targets[i%len(targets)])
	}
	wg.Wait()
	return sample{ops: ops, elapsed: time.Since(start), lat: lat}, errs, first
}
