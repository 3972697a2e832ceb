//go:build bench

package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// importSection: `etcdshim v2 import` of 10,000 keys of mixed sizes from
// etcd 3.4's v2 store into a 3.7 member, each round into a fresh
// --v2-prefix so every round copies everything.
func importSection(t *testing.T, out *strings.Builder, native string, member string) {
	const keys = 10000
	fillBulk(t, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}, native, "/imp", keys)
	if t.Failed() {
		t.FailNow()
	}
	var inCmd, endToEnd []float64
	for r := 0; r < benchRounds(); r++ {
		begin := time.Now()
		o, e, code := harness.RunShim(t, nil, "v2", "import", "--from", native, "--endpoints", member, "--source-prefix", "/imp",
			"--v2-prefix", fmt.Sprintf("/bench-import-%d", r), "--log-level", "warn")
		took := time.Since(begin)
		m := importSummary.FindStringSubmatch(o)
		if code != 0 || m == nil {
			t.Fatalf("import: exit %d\n%s%s", code, o, e)
		}
		n, _ := strconv.Atoi(m[2])
		if n < keys {
			t.Fatalf("imported %d keys, want %d: %s", n, keys, o)
		}
		kps, _ := strconv.ParseFloat(m[3], 64)
		inCmd = append(inCmd, kps)
		endToEnd = append(endToEnd, float64(n)/took.Seconds())
	}
	fmt.Fprintf(out, "\n### v2 import: %d keys (16 B–8 KiB values in 50 directories), etcd 3.4 v2 → 3.7\n\n`%s (etcdshim v2 import --from <3.4> --endpoints <3.7> --source-prefix /imp)`\n\n", keys, rerun("import"))
	fmt.Fprintf(out, "| measure | keys/s (median of %d) |\n|---|---|\n| copy (the command's own summary: consistent read, batched txns) | %.0f |\n| end to end (process start, read, write, summary) | %.0f |\n",
		benchRounds(), median(inCmd), median(endToEnd))
}
