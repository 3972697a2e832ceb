package harness

import (
	"net/url"
	"testing"

	"github.com/etcdshim/etcdshim/upstream"
)

// StartMemberPool starts a single etcd member of version and returns the
// shim's upstream pool on it, for benchmarks of the shim's own request paths
// against a real member in another process. It skips the benchmark under
// -short, as etcdtest.Start does: its callers live in the packages' own
// test files, which make unit runs.
func StartMemberPool(tb testing.TB, version string) *upstream.Pool {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts an etcd process")
	}
	cl := StartCluster(tb, ClusterConfig{Version: version, Size: 1})
	u, _ := url.Parse(cl.ClientURLs()[0])
	pool, err := upstream.NewPool(upstream.Options{Endpoints: []*url.URL{u}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}
