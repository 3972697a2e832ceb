package preflight

import (
	"reflect"
	"testing"
)

func TestPlanOrder(t *testing.T) {
	tests := []struct {
		name     string
		target   string
		versions []string
		leader   int
		want     []string // action member
	}{
		{"leader first in list goes last", "3.5", []string{"3.4.23", "3.4.23", "3.4.23"}, 0,
			[]string{"snapshot m0", "upgrade m1", "upgrade m2", "upgrade m0", "verify "}},
		{"leader in the middle", "3.6", []string{"3.5.35", "3.5.35", "3.5.35"}, 1,
			[]string{"snapshot m1", "upgrade m0", "upgrade m2", "upgrade m1", "verify "}},
		{"upgraded members are skipped", "3.5", []string{"3.4.23", "3.5.35", "3.4.23"}, 2,
			[]string{"snapshot m2", "upgrade m0", "upgrade m2", "verify "}},
		{"leader unknown: no snapshot step", "3.5", []string{"3.4.23", "3.4.23"}, -1,
			[]string{"upgrade m0", "upgrade m1", "verify "}},
		{"nothing to do", "3.5", []string{"3.5.35"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := cluster("3.4.0", tt.leader, tt.versions...)
			var got []string
			for _, s := range buildPlan(mustTarget(tt.target), f.Members, tt.leader) {
				got = append(got, s.Action+" "+s.Member)
				if s.Action == "upgrade" && s.To != mustTarget(tt.target).MinorString() {
					t.Errorf("step %+v: To = %s", s, s.To)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("plan %q, want %q", got, tt.want)
			}
		})
	}
}
