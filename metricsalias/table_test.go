package metricsalias

import (
	"os"
	"path/filepath"
	"testing"
)

// Every alias can be switched off, as the README says: with
// --metric-alias-groups none, or with a table of no groups.
func TestAliasesOff(t *testing.T) {
	builtin, err := LoadTable("")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := builtin.Active(nil); err != nil || len(got) != 5 {
		t.Fatalf("the default group: %d aliases, %v; want 5", len(got), err)
	}
	if got, err := builtin.Active([]string{NoAliases}); err != nil || len(got) != 0 {
		t.Fatalf("--metric-alias-groups none: %d aliases, %v; want none", len(got), err)
	}
	if _, err := builtin.Active([]string{NoAliases, "etcd2"}); err == nil {
		t.Fatal("none with another group: no error")
	}
	empty := filepath.Join(t.TempDir(), "aliases.yaml")
	if err := os.WriteFile(empty, []byte("groups: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tbl, err := LoadTable(empty)
	if err != nil {
		t.Fatalf("a table of no groups: %v", err)
	}
	if got, err := tbl.Active(nil); err != nil || len(got) != 0 {
		t.Fatalf("a table of no groups: %d aliases, %v; want none", len(got), err)
	}
}
