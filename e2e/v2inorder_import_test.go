package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// TestV2InOrderAfterImport (issues 19 and 22): a 3.4 store whose v2 index
// is far above the destination's revision after `etcdshim v2 import` (a
// store v2 clients wrote much: ~3000 keys, an in-order queue among them).
// POSTs into the imported queue through the shim succeed, concurrently too,
// and sort after the imported items; `etcdctl mk --in-order` (v2) works;
// the import warns that in-order names will run ahead of createdIndex.
func TestV2InOrderAfterImport(t *testing.T) {
	e2eSerial(t)
	src, dst, shim := startImportPair(t)
	from, to := src.ClientURLs()[0], dst.ClientURLs()[0]
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

	// The queue gets items early and late, so its names spread over the
	// source's index, the last ones near 3000.
	const queue = "/jobs/queue"
	var imported []string
	post := func(base, value string) map[string]any {
		return v2Do(t, hc, http.MethodPost, base, queue, url.Values{"value": {value}})
	}
	for i := 0; i < 5; i++ {
		imported = append(imported, post(from, fmt.Sprintf("early-%d", i))["node"].(map[string]any)["key"].(string))
	}
	fillBulk(t, hc, from, "/bulk", 2980)
	for i := 0; i < 15; i++ {
		imported = append(imported, post(from, fmt.Sprintf("late-%d", i))["node"].(map[string]any)["key"].(string))
	}
	if t.Failed() {
		t.FailNow()
	}
	srcIndex := recipeTarget{urls: []string{from}, hc: hc}.currentIndex(t)

	out, errOut, code := harness.RunShim(t, nil, "v2", "import", "--from", from, "--endpoints", to, "--log-level", "warn")
	if code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	destRev := recipeTarget{urls: []string{shim.URL}, hc: hc}.currentIndex(t)
	t.Logf("source v2 index %d, destination revision %d after the import", srcIndex, destRev)
	if srcIndex < destRev+1000 {
		t.Fatalf("the premise does not hold: source index %d, destination revision %d", srcIndex, destRev)
	}
	if !strings.Contains(errOut, "imported in-order keys are named above the destination's revision") || !strings.Contains(errOut, queue) {
		t.Errorf("the import did not warn about the in-order names of %s:\n%s", queue, errOut)
	}
	top := imported[len(imported)-1]

	// Through the shim: sequential and concurrent POSTs, and etcdctl's.
	var mine []string
	for i := 0; i < 5; i++ {
		k := post(shim.URL, fmt.Sprintf("new-%d", i))["node"].(map[string]any)["key"].(string)
		if k <= top {
			t.Fatalf("POST after the import named %s, not above the imported %s", k, top)
		}
		mine = append(mine, k)
	}
	var mu sync.Mutex
	var conc sync.WaitGroup
	tg := recipeTarget{urls: []string{shim.URL}, hc: hc}
	var failed []string
	for p := 0; p < 4; p++ {
		conc.Add(1)
		go func(p int) {
			defer conc.Done()
			for i := 0; i < 10; i++ {
				r := tg.do(context.Background(), p, http.MethodPost, queue, nil, url.Values{"value": {fmt.Sprintf("conc-%d-%d", p, i)}})
				mu.Lock()
				if !r.is(201, 0) {
					failed = append(failed, r.String())
				} else {
					mine = append(mine, r.Body.Node.Key)
				}
				mu.Unlock()
			}
		}(p)
	}
	conc.Wait()
	if len(failed) != 0 {
		t.Fatalf("%d of 40 concurrent POSTs failed, want 0: %q", len(failed), failed[:min(3, len(failed))])
	}
	ctl := etcdctl2(t, shim.URL, "-o", "extended", "mk", "--in-order", queue, "from etcdctl")
	var ctlKey string
	for _, line := range strings.Split(ctl, "\n") {
		if k, ok := strings.CutPrefix(line, "Key: "); ok {
			ctlKey = k
		}
	}
	if ctlKey == "" || path.Dir(ctlKey) != queue {
		t.Fatalf("etcdctl mk --in-order: %q", ctl)
	}
	mine = append(mine, ctlKey)

	// The sorted listing: the imported items in their order, then the new
	// ones in creation order.
	list := v2Do(t, hc, http.MethodGet, shim.URL, queue+"?sorted=true", nil)
	var keys, values []string
	for _, n := range list["node"].(map[string]any)["nodes"].([]any) {
		m := n.(map[string]any)
		keys = append(keys, m["key"].(string))
		values = append(values, m["value"].(string))
	}
	if len(keys) != len(imported)+len(mine) {
		t.Fatalf("%d items listed, want %d imported + %d new", len(keys), len(imported), len(mine))
	}
	for i, k := range imported {
		if keys[i] != k {
			t.Fatalf("item %d is %s, want the imported %s", i, keys[i], k)
		}
	}
	// Sequential POSTs were made in order; the concurrent ones in any
	// order, all after them; etcdctl's last.
	for i, k := range mine[:5] {
		if keys[len(imported)+i] != k {
			t.Fatalf("new item %d is %s, want %s", i, keys[len(imported)+i], k)
		}
	}
	if keys[len(keys)-1] != ctlKey || values[len(values)-1] != "from etcdctl" {
		t.Fatalf("last item %s=%q, want etcdctl's %s", keys[len(keys)-1], values[len(values)-1], ctlKey)
	}
	t.Logf("imported %d queue items up to %s; %d created through the shim after them, up to %s", len(imported), top, len(mine), ctlKey)
}
