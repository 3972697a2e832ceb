package preflight

import (
	"fmt"
	"reflect"
	"strings"
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
			[]string{"snapshot m0", "upgrade m1", "upgrade m2", "move-leader m0", "upgrade m0", "verify "}},
		{"leader in the middle", "3.6", []string{"3.5.35", "3.5.35", "3.5.35"}, 1,
			[]string{"snapshot m1", "upgrade m0", "upgrade m2", "move-leader m1", "upgrade m1", "verify "}},
		{"upgraded members are skipped", "3.5", []string{"3.4.23", "3.5.35", "3.4.23"}, 2,
			[]string{"snapshot m2", "upgrade m0", "move-leader m2", "upgrade m2", "verify "}},
		{"leader unknown: no snapshot step", "3.5", []string{"3.4.23", "3.4.23"}, -1,
			[]string{"upgrade m0", "upgrade m1", "verify "}},
		{"nothing to do", "3.5", []string{"3.5.35"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := cluster("3.4.0", tt.leader, tt.versions...)
			var got []string
			plan := buildPlan(mustTarget(tt.target), f.Members, tt.leader)
			for _, s := range plan {
				got = append(got, s.Action+" "+s.Member)
				// Leadership goes to the follower upgraded first (plan[1],
				// after the snapshot).
				if s.Action == "move-leader" {
					want := ""
					for _, m := range f.Members {
						if displayName(m) == plan[1].Member {
							want = fmt.Sprintf(" move-leader %x", m.ID)
						}
					}
					if want == "" || !strings.HasSuffix(s.Command, want) {
						t.Errorf("move-leader command %q, want it to end with %q", s.Command, want)
					}
				}
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
