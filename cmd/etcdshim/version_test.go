package main

import (
	"runtime/debug"
	"testing"
)

func TestBuildInfoVersion(t *testing.T) {
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "d7c2ca8f00ba5e1d2c3b4a59687766554433221f"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	tests := []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"go install @tag", debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, "v0.4.0"},
		{"checkout with a pseudo-version", debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261129221300-d7c2ca8f00ba+dirty"}, Settings: []debug.BuildSetting{rev, dirty}},
			"v0.0.0-20261129221300-d7c2ca8f00ba+dirty"},
		{"checkout without a version", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{rev}}, "dev (d7c2ca8f00ba)"},
		{"modified checkout", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{rev, dirty}}, "dev (d7c2ca8f00ba-dirty)"},
		{"nothing known", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildInfoVersion(&tt.bi); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
