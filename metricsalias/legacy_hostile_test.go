package metricsalias

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func observe(tr *LegacyTracker, remote, agent, user string) {
	r := httptest.NewRequest("GET", "/v2/keys/x", nil)
	r.RemoteAddr = remote + ":5555"
	r.Header.Set("User-Agent", agent)
	tr.Observe(r, "v2", user)
}

// TestLegacyTrackerHostile: 200 requests with 500 KB user agents make a
// page of bounded size; a flood of 1,001 distinct anonymous user agents
// from one address wipes neither the authenticated entries nor the other
// addresses' clients.
func TestLegacyTrackerHostile(t *testing.T) {
	tr := NewLegacyTracker(100, prometheus.NewRegistry())
	observe(tr, "10.0.0.1", "etcdctl/3.3", "alice")
	observe(tr, "10.0.0.2", "python-etcd/0.4.5", "")
	huge := strings.Repeat("x", 500<<10)
	for i := 0; i < 200; i++ {
		observe(tr, "10.0.0.9", fmt.Sprintf("%d%s", i, huge), "")
	}
	for i := 0; i < 1001; i++ {
		observe(tr, "10.0.0.9", fmt.Sprintf("flood-%d", i), "")
	}
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/legacy", nil))
	if n := rec.Body.Len(); n > 1<<20 {
		t.Fatalf("the page is %d bytes; want at most 1 MiB for 100 clients", n)
	}
	var rep LegacyReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, c := range rep.Clients {
		if len(c.UserAgent) > maxAgentBytes {
			t.Fatalf("a user agent of %d bytes was kept", len(c.UserAgent))
		}
		found[c.Remote+" "+c.UserAgent+" "+c.User] = true
	}
	for _, want := range []string{"10.0.0.1 etcdctl/3.3 alice", "10.0.0.2 python-etcd/0.4.5 "} {
		if !found[want] {
			t.Errorf("the flood wiped %q: %v", want, found)
		}
	}
	if !found["10.0.0.9 "+otherAgents+" "] {
		t.Errorf("the flood's further agents are not counted together: %v", found)
	}
}
