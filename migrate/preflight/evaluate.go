package preflight

import (
	"strconv"
)

// Evaluate decides every check from the facts and plans the upgrade. It does
// no I/O, so every decision is unit-tested on hand-written facts.
func Evaluate(target Version, f Facts) *Report {
	r := &Report{Target: target.MinorString(), Verdict: StatusOK, Checks: []Check{}, Plan: []Step{}}
	var reachable []MemberFacts
	for _, m := range f.Members {
		rm := Member{Name: m.Name, Endpoint: m.Endpoint, Reachable: m.Reachable(), Healthy: m.Healthy,
			Server: m.Server, Cluster: m.Cluster, Error: m.Err}
		if m.ID != 0 {
			rm.ID = strconv.FormatUint(m.ID, 16)
		}
		if rm.Error == "" && !m.Healthy {
			rm.Error = "unhealthy: " + m.HealthReason
		}
		r.Members = append(r.Members, rm)
		if m.Reachable() {
			reachable = append(reachable, m)
		}
	}

	r.add(checkHealth(f.Members))
	r.add(checkMembership(f))
	vp, extra := checkVersionPath(target, reachable)
	r.add(vp)
	for _, c := range extra {
		r.add(c)
	}
	lc, leader := checkLeader(f.Members)
	r.add(lc)
	if leader >= 0 {
		r.Members[leader].Leader = true
		r.Leader = displayName(f.Members[leader])
	}
	r.add(checkAlarms(f))
	r.add(checkV2Data(target, reachable))
	if c, ok := checkV2WAL(target, reachable); ok {
		r.add(c)
	}
	r.add(checkLegacy(f.Shims))
	r.Plan = buildPlan(target, f.Members, leader)
	return r
}
