package metricsalias

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLegacyClientsGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr := NewLegacyTracker(100, reg)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	tr.now = func() time.Time { return now }
	observe := func(remote, agent, surface string) {
		r := httptest.NewRequest("GET", "/v2/keys/a", nil)
		r.RemoteAddr = remote + ":1234"
		r.Header.Set("User-Agent", agent)
		tr.Observe(r, surface, "")
	}
	observe("10.0.0.1", "etcdctl/2", "v2")
	now = now.Add(2 * time.Hour)
	observe("10.0.0.2", "python-etcd", "v2")
	observe("10.0.0.2", "curl/8", "v3beta")
	want := `
# HELP etcdshim_legacy_clients Clients (address, user agent, v2 user) on each legacy surface that the /debug/legacy table remembers, by how recently they were seen (seen_within 1h, 1d, or ever since the shim started).
# TYPE etcdshim_legacy_clients gauge
etcdshim_legacy_clients{seen_within="1d",surface="metric-alias"} 0
etcdshim_legacy_clients{seen_within="1d",surface="v2"} 2
etcdshim_legacy_clients{seen_within="1d",surface="v3alpha"} 0
etcdshim_legacy_clients{seen_within="1d",surface="v3beta"} 1
etcdshim_legacy_clients{seen_within="1h",surface="metric-alias"} 0
etcdshim_legacy_clients{seen_within="1h",surface="v2"} 1
etcdshim_legacy_clients{seen_within="1h",surface="v3alpha"} 0
etcdshim_legacy_clients{seen_within="1h",surface="v3beta"} 1
etcdshim_legacy_clients{seen_within="ever",surface="metric-alias"} 0
etcdshim_legacy_clients{seen_within="ever",surface="v2"} 2
etcdshim_legacy_clients{seen_within="ever",surface="v3alpha"} 0
etcdshim_legacy_clients{seen_within="ever",surface="v3beta"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "etcdshim_legacy_clients"); err != nil {
		t.Fatal(err)
	}
}
