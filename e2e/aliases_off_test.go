package e2e

import (
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// TestMetricAliasesOff: --metric-alias-groups none removes every alias from
// /metrics, the default group's too, as the README says; without it a 3.7
// member's page carries the five default aliases.
func TestMetricAliasesOff(t *testing.T) {
	e2eParallel(t)
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 1})
	with := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
	without := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: []string{"--metric-alias-groups", "none"}})
	aliases := []string{"etcd_debugging_mvcc_db_total_size_in_bytes", "etcd_debugging_mvcc_put_total",
		"etcd_debugging_mvcc_delete_total", "etcd_debugging_mvcc_txn_total", "etcd_debugging_mvcc_range_total"}

	page := httpBody(t, "GET", with.URL+"/metrics", "")
	for _, a := range aliases {
		if !strings.Contains(page, "\n# TYPE "+a+" ") {
			t.Errorf("by default: %s is not on /metrics", a)
		}
	}

	page = httpBody(t, "GET", without.URL+"/metrics", "")
	for _, a := range aliases {
		if strings.Contains(page, "\n# TYPE "+a+" ") {
			t.Errorf("--metric-alias-groups none: %s is still on /metrics", a)
		}
	}
	if !strings.Contains(page, "\n# TYPE etcd_mvcc_put_total ") {
		t.Error("--metric-alias-groups none: the member's own etcd_mvcc_put_total is missing")
	}
}
