package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestV2VerifyAndDryRun: `v2 import --dry-run` lists every node it would
// write (and, with --prune, delete), as text or JSON, and writes nothing;
// `v2 verify` tells nodes the source lacks (written through the shim after
// the import: informational, exit 0) from nodes that are wrong (exit 1),
// prints its summary on stdout without an error prefix, and exits 3 when
// it cannot compare.
func TestV2VerifyAndDryRun(t *testing.T) {
	e2eSerial(t)
	src, dst, shim := startImportPair(t)
	from, to := src.ClientURLs()[0], dst.ClientURLs()[0]
	hc := &http.Client{Timeout: 10 * time.Second}
	put := func(key string, form url.Values) { v2Do(t, hc, http.MethodPut, from, key, form) }
	put("/app/a", url.Values{"value": {"one"}})
	put("/app/b", url.Values{"value": {"two!"}})
	put("/app/lease", url.Values{"value": {"x"}, "ttl": {"600"}})
	put("/empty", url.Values{"dir": {"true"}})
	common := []string{"--from", from, "--endpoints", to, "--log-level", "warn"}
	v3 := newClient(t, to)
	ctx := context.Background()
	lines := func(out string) []string { return strings.Split(strings.TrimRight(out, "\n"), "\n") }

	t.Run("dry-run lists what it would write", func(t *testing.T) {
		out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "import", "--dry-run"}, common...)...)
		got := lines(out)
		// The TTL is the time left when the source was read: 600s or 599s.
		want := []string{
			"would create dir /app",
			"would create key /app/a (3 bytes)",
			"would create key /app/b (4 bytes)",
			"would create key /app/lease (1 bytes), ttl 5",
			"would create dir /empty",
			"would import 2 dirs, 3 keys, ",
		}
		ok := code == 0 && errOut == "" && len(got) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = got[i] == want[i] || (i >= 3 && i != 4 && strings.HasPrefix(got[i], want[i])) ||
				(i == 3 && strings.HasPrefix(got[i], "would create key /app/lease (1 bytes), ttl 600s"))
		}
		if !ok {
			t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, strings.Join(want, "\n"))
		}
		if r, err := v3.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || r.Count != 0 {
			t.Fatalf("the dry run wrote %d keys (%v)", r.Count, err)
		}
	})

	t.Run("dry-run as JSON", func(t *testing.T) {
		out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "import", "--dry-run", "--output", "json"}, common...)...)
		var doc struct {
			Planned []struct {
				Action, Path string
				Dir          bool
				Bytes        int
				TTL          int64
			}
			Dirs, Keys int
		}
		if code != 0 || errOut != "" || json.Unmarshal([]byte(out), &doc) != nil {
			t.Fatalf("exit %d, stderr %q, stdout %q", code, errOut, out)
		}
		if len(doc.Planned) != 5 || doc.Dirs != 2 || doc.Keys != 3 || doc.Planned[1].Action != "create" ||
			doc.Planned[1].Path != "/app/a" || doc.Planned[1].Bytes != 3 || doc.Planned[3].TTL < 590 {
			t.Fatalf("plan %+v", doc)
		}
		_, errOut, code = harness.RunShim(t, nil, append([]string{"v2", "import", "--output", "json"}, common...)...)
		if code != 2 || errOut != "etcdshim: --output json goes with --dry-run: an import prints its summary as text\n" {
			t.Fatalf("--output json without --dry-run: exit %d %q", code, errOut)
		}
	})

	if out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "import"}, common...)...); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}

	t.Run("nodes written through the shim are informational", func(t *testing.T) {
		etcdctl2(t, shim.URL, "set", "/later/key", "written after the import")
		out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "verify"}, common...)...)
		got := lines(out)
		if code != 0 || errOut != "" || len(got) != 3 ||
			got[0] != "only on the destination: /later (dir)" ||
			got[1] != `only on the destination: /later/key (file "written after the import")` ||
			got[2] != "ok: the destination holds every source node as the source has it; 2 dirs, 3 keys of the source compared; "+
				"2 nodes only on the destination, written through the shim after the import or deleted on the source since (not an error)" {
			t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
		}
	})

	t.Run("wrong nodes fail, listed first", func(t *testing.T) {
		if _, err := v3.Put(ctx, "/app/a", "tampered"); err != nil {
			t.Fatal(err)
		}
		if _, err := v3.Delete(ctx, "/app/b"); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "verify"}, common...)...)
		got := lines(out)
		want := []string{
			`value differs: /app/a (source "one", destination "tampered")`,
			`not on the destination: /app/b (file "two!")`,
			"only on the destination: /later (dir)",
			`only on the destination: /later/key (file "written after the import")`,
			"2 nodes to fix: the destination lacks or contradicts them (re-run v2 import, or find who changed them); 2 dirs, 3 keys of the source compared; " +
				"2 nodes only on the destination, written through the shim after the import or deleted on the source since (not an error)",
		}
		if code != 1 || errOut != "" || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, strings.Join(want, "\n"))
		}

		out, _, code = harness.RunShim(t, nil, append([]string{"v2", "verify", "--output", "json"}, common...)...)
		var doc struct {
			Verdict           string
			Wrong             int
			OnlyOnDestination int `json:"only_on_destination"`
			Differences       []struct {
				Path, Kind string
				Wrong      bool
			}
		}
		if code != 1 || json.Unmarshal([]byte(out), &doc) != nil || doc.Verdict != "wrong" || doc.Wrong != 2 || doc.OnlyOnDestination != 2 ||
			len(doc.Differences) != 4 || !doc.Differences[0].Wrong || doc.Differences[2].Wrong {
			t.Fatalf("verify --output json: exit %d %s", code, out)
		}
	})

	t.Run("dry-run with --prune lists updates and deletions", func(t *testing.T) {
		out, errOut, code := harness.RunShim(t, nil, append([]string{"v2", "import", "--dry-run", "--prune"}, common...)...)
		got := lines(out)
		want := []string{
			"would update key /app/a (3 bytes)",
			"would create key /app/b (4 bytes)",
			"would delete dir /later",
			"would delete key /later/key",
		}
		if code != 0 || errOut != "" || len(got) != len(want)+1 || strings.Join(got[:len(want)], "\n") != strings.Join(want, "\n") {
			t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, strings.Join(want, "\n"))
		}
	})

	t.Run("cannot compare", func(t *testing.T) {
		dead := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
		out, errOut, code := harness.RunShim(t, nil, "v2", "verify", "--from", dead, "--endpoints", to, "--log-level", "warn")
		if code != 3 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "etcdshim: ") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
}
