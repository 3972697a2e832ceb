package preflight

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// scenarios are shared by the check tests and the golden rendering tests.
func scenarios() map[string]struct {
	target string
	facts  Facts
} {
	seen := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

	ok34 := cluster("3.4.0", 1, "3.4.23", "3.4.23", "3.4.23")

	v2data := cluster("3.5.0", 0, "3.5.35")
	v2data.Members[0].V2 = V2Facts{Status: http.StatusOK, Nodes: []string{"/legacy/", "/flag"}, Users: []string{"app"}}

	v2empty := cluster("3.5.0", 0, "3.5.35")
	v2empty.Members[0].V2 = V2Facts{Status: http.StatusOK}

	mixed := cluster("3.4.0", 0, "3.4.23", "3.5.35", "3.4.23")

	down := cluster("3.5.0", 2, "3.5.35", "3.5.35", "3.5.35")
	down.Members[1] = MemberFacts{Endpoint: down.Members[1].Endpoint, Name: "m1", ID: 2, Err: "dial tcp 10.0.0.1:2379: connect: connection refused"}
	down.Alarms = []Alarm{{MemberID: 1, Type: "NOSPACE"}}
	down.Members[0].Healthy, down.Members[0].HealthReason = false, "ALARM NOSPACE"
	down.Shims = []ShimFacts{
		{URL: "http://10.0.0.0:2379", Clients: []LegacyClient{
			{Surface: "v2", Remote: "10.1.0.7", UserAgent: "etcdctl/2", Requests: 12, FirstSeen: seen, LastSeen: seen},
			{Surface: "v3beta", Remote: "10.1.0.8", UserAgent: "curl/8.5.0", Requests: 3, FirstSeen: seen, LastSeen: seen}}},
		{URL: "http://10.0.0.2:2379", Err: "timed out"},
	}

	unlisted := cluster("3.5.0", 0, "3.5.35", "3.5.35")
	unlisted.Cluster = append(unlisted.Cluster, ClusterMember{Name: "m9", ID: 10, ClientURLs: []string{"http://10.0.0.9:2379"}})

	return map[string]struct {
		target string
		facts  Facts
	}{
		"ok-3.4-to-3.5":      {"3.5", ok34},
		"skip-3.4-to-3.6":    {"3.6", ok34},
		"v2-data-to-3.6":     {"3.6", v2data},
		"v2-data-to-3.5":     {"3.5", v2data},
		"v2-enabled-empty":   {"3.6", v2empty},
		"mixed-in-progress":  {"3.5", mixed},
		"down-alarm-legacy":  {"3.6", down},
		"member-not-checked": {"3.6", unlisted},
	}
}

func TestEvaluate(t *testing.T) {
	type want struct {
		check  string
		status Status
		text   string // substring of Detail or Remedy
	}
	tests := []struct {
		scenario string
		verdict  Status
		leader   string
		checks   []want
	}{
		{"ok-3.4-to-3.5", StatusOK, "m1", []want{
			{"health", StatusOK, "all 3 members"}, {"version-path", StatusOK, "next minor"},
			{"leader", StatusOK, "v3 Status agrees"}, {"v2-data", StatusOK, "could not be checked over the network"},
			{"alarms", StatusOK, "no active alarms"}, {"members", StatusOK, "3 members"}}},
		{"skip-3.4-to-3.6", StatusBlocker, "m1", []want{{"version-path", StatusBlocker, "upgrade to 3.5 first"}}},
		{"v2-data-to-3.6", StatusBlocker, "m0", []want{
			{"v2-data", StatusBlocker, "detected disallowed custom content in v2store"},
			{"v2-data", StatusBlocker, "etcdshim v2 import"},
			{"v2-data", StatusBlocker, "/legacy/"},
			{"v2-data", StatusBlocker, "v2 auth users app"},
			{"v2-wal", StatusWarn, "snapshot-count"}}},
		{"v2-data-to-3.5", StatusWarn, "m0", []want{{"v2-data", StatusWarn, "3.6 will refuse"}}},
		{"v2-enabled-empty", StatusWarn, "m0", []want{{"v2-data", StatusWarn, "remove --enable-v2"}, {"v2-wal", StatusWarn, "v2 API is on"}}},
		{"mixed-in-progress", StatusWarn, "m0", []want{{"version-path", StatusWarn, "in progress"}}},
		{"down-alarm-legacy", StatusBlocker, "m2", []want{
			{"health", StatusBlocker, "m1 (http://10.0.0.1:2379) is unreachable"},
			{"health", StatusBlocker, "ALARM NOSPACE"},
			{"alarms", StatusBlocker, "NOSPACE on m0 (1)"},
			{"legacy-clients", StatusWarn, `10.1.0.7 "etcdctl/2"`},
			{"legacy-clients", StatusWarn, "/debug/legacy could not be read on http://10.0.0.2:2379"},
			{"v2-wal", StatusOK, "v2 API is off"}}},
		{"member-not-checked", StatusBlocker, "m0", []want{{"members", StatusBlocker, "m9 (a, client http://10.0.0.9:2379) is not in --endpoints"}}},
	}
	all := scenarios()
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			sc := all[tt.scenario]
			r := Evaluate(mustTarget(sc.target), sc.facts)
			if r.Verdict != tt.verdict || r.Leader != tt.leader {
				t.Fatalf("verdict %s leader %q, want %s %q; checks %+v", r.Verdict, r.Leader, tt.verdict, tt.leader, r.Checks)
			}
			for _, w := range tt.checks {
				c := r.Check(w.check)
				if c == nil {
					t.Fatalf("no %s check", w.check)
				}
				if c.Status != w.status || !strings.Contains(c.Detail+" "+c.Remedy, w.text) {
					t.Errorf("%s: %s %q remedy %q; want %s containing %q", w.check, c.Status, c.Detail, c.Remedy, w.status, w.text)
				}
			}
		})
	}
}

func TestLeaderDisagreement(t *testing.T) {
	f := cluster("3.5.0", 0, "3.5.35", "3.5.35", "3.5.35")
	for i := range f.Members {
		f.Members[i].StatusLeaderID = 3 // Status says m2
	}
	c, l := checkLeader(f.Members)
	if c.Status != StatusWarn || l != 0 || !strings.Contains(c.Detail, "v3 Status names m2") {
		t.Fatalf("got %+v leader %d", c, l)
	}
	// No metrics at all: Status decides.
	for i := range f.Members {
		f.Members[i].MetricsLeader = nil
	}
	c, l = checkLeader(f.Members)
	if c.Status != StatusOK || l != 2 {
		t.Fatalf("status fallback: got %+v leader %d", c, l)
	}
	// Nobody leads.
	for i := range f.Members {
		f.Members[i].StatusLeaderID = 0
	}
	if c, l = checkLeader(f.Members); c.Status != StatusBlocker || l != -1 {
		t.Fatalf("no leader: got %+v leader %d", c, l)
	}
}
