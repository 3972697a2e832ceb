package preflight

import (
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"3.6", "3.6", false},
		{"v3.6", "3.6", false},
		{"3.5.35", "3.5.35", false},
		{"3.6.0-rc.1", "3.6.0", false},
		{"3", "", true},
		{"3.x", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := ParseVersion(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && v.String() != tt.want {
				t.Fatalf("got %s, want %s", v, tt.want)
			}
		})
	}
	for _, bad := range []string{"2.3", "4.0", "3.0"} {
		if _, err := ValidateTarget(bad); err == nil {
			t.Errorf("ValidateTarget(%q) accepted", bad)
		}
	}
}

func TestVersionPath(t *testing.T) {
	tests := []struct {
		name         string
		target       string
		cluster      string
		versions     []string
		want         Status
		detail       string // substring of Detail
		remedy       string // substring of Remedy
		patch        Status // "" when no patch-level check is expected
		patchContain string
	}{
		{"3.4 to 3.5", "3.5", "3.4.0", []string{"3.4.23", "3.4.23", "3.4.23"}, StatusOK, "3.5 is the next minor", "", "", ""},
		{"3.4 to 3.6 skips", "3.6", "3.4.0", []string{"3.4.23", "3.4.23", "3.4.23"}, StatusBlocker, "skips 3.5", "upgrade to 3.5 first", "", ""},
		{"3.5 to 3.6", "3.6", "3.5.0", []string{"3.5.35", "3.5.35", "3.5.35"}, StatusOK, "supported rolling upgrade", "", StatusOK, "3.5.26 or later"},
		{"3.5 old patch to 3.6", "3.6", "3.5.0", []string{"3.5.35", "3.5.13", "3.5.35"}, StatusOK, "", "", StatusWarn, "m1 (3.5.13)"},
		{"cluster version lags", "3.6", "3.4.0", []string{"3.5.35", "3.5.35", "3.5.35"}, StatusBlocker, "cluster version is 3.4", "etcdcluster 3.5.0", "", ""},
		{"mixed towards target", "3.5", "3.4.0", []string{"3.4.23", "3.5.35", "3.4.23"}, StatusWarn, "in progress", "carry on", "", ""},
		{"mixed, target beyond", "3.6", "3.4.0", []string{"3.4.23", "3.5.35", "3.4.23"}, StatusBlocker, "in progress", "finish the upgrade to 3.5 first", "", ""},
		{"mixed two minors apart", "3.6", "3.4.0", []string{"3.4.23", "3.6.16", "3.4.23"}, StatusBlocker, "more than one minor apart", "", "", ""},
		{"target below running", "3.4", "3.5.0", []string{"3.5.35", "3.5.35"}, StatusBlocker, "lower than the running 3.5", "downgrade", "", ""},
		{"already there", "3.5", "3.5.0", []string{"3.5.35"}, StatusOK, "already there", "", "", ""},
		{"there, cluster version lags", "3.5", "3.4.0", []string{"3.5.35", "3.5.35"}, StatusWarn, "still 3.4", "wait", "", ""},
		{"3.6 to 3.7", "3.7", "3.6.0", []string{"3.6.16", "3.6.16", "3.6.16"}, StatusOK, "", "", StatusOK, ""},
		{"no version", "3.6", "", []string{""}, StatusBlocker, "did not report", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := cluster(tt.cluster, 0, tt.versions...)
			c, extra := checkVersionPath(mustTarget(tt.target), f.Members)
			if c.Status != tt.want || !strings.Contains(c.Detail, tt.detail) || !strings.Contains(c.Remedy, tt.remedy) {
				t.Fatalf("got %s %q remedy %q; want %s with %q, remedy %q", c.Status, c.Detail, c.Remedy, tt.want, tt.detail, tt.remedy)
			}
			if tt.patch == "" {
				if len(extra) != 0 {
					t.Fatalf("unexpected extra checks %+v", extra)
				}
				return
			}
			if len(extra) != 1 || extra[0].Status != tt.patch || !strings.Contains(extra[0].Detail, tt.patchContain) {
				t.Fatalf("patch-level: got %+v, want %s with %q", extra, tt.patch, tt.patchContain)
			}
		})
	}
}

func TestValidateTargetRejectsPatch(t *testing.T) {
	if v, err := ValidateTarget("3.5"); err != nil || v.String() != "3.5" {
		t.Fatalf("3.5: %v %v", v, err)
	}
	_, err := ValidateTarget("3.5.1")
	if err == nil || err.Error() != `target "3.5.1": give the minor version to upgrade to, 3.5; which 3.5 patch to install is yours (etcd's upgrade guides recommend the latest)` {
		t.Fatalf("3.5.1: %v", err)
	}
}

func TestPlural(t *testing.T) {
	if plural(1, "warning") != "1 warning" || plural(0, "warning") != "0 warnings" || plural(2, "member") != "2 members" {
		t.Fatal(plural(1, "warning"), plural(0, "warning"), plural(2, "member"))
	}
}
