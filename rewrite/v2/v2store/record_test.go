package v2store

import "testing"

// TestDirectoryRecordKeys: a write's record lies in its parent directory,
// no v2 path can name it, and import/verify do not take it for a node.
func TestDirectoryRecordKeys(t *testing.T) {
	l := Layout{prefix: "/v2"}
	for _, c := range []struct{ p, rec string }{
		{"/alice/b", "/v2/alice/."},
		{"/alice/sub/x", "/v2/alice/sub/."},
		{"/a", "/v2/."},
	} {
		if got := string(l.Record(ParentDir(c.p))); got != c.rec {
			t.Errorf("record of %s = %s, want %s", c.p, got, c.rec)
		}
		if !IsRecord([]byte(c.rec)) {
			t.Errorf("IsRecord(%s) = false", c.rec)
		}
		if _, _, ok := NewLayout("/v2").Path([]byte(c.rec)); ok {
			t.Errorf("Path(%s) is a v2 node", c.rec)
		}
	}
	for _, k := range []string{"/v2/a.", "/v2/a/", "/v2/.a", "/v2/a/.b"} {
		if IsRecord([]byte(k)) {
			t.Errorf("IsRecord(%s) = true", k)
		}
	}
}
