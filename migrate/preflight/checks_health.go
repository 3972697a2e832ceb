package preflight

import (
	"fmt"
	"strconv"
	"strings"
)

// checkHealth: every member must answer and be healthy, since a rolling
// upgrade takes one member down at a time and a second one down costs quorum
// on three members.
func checkHealth(members []MemberFacts) Check {
	c := Check{Name: "health"}
	var bad []string
	for _, m := range members {
		switch {
		case !m.Reachable():
			bad = append(bad, fmt.Sprintf("%s is unreachable: %s", who(m), m.Err))
		case !m.Healthy:
			reason := m.HealthReason
			if reason == "" {
				reason = "no reason given"
			}
			bad = append(bad, fmt.Sprintf("%s answers /health false: %s", who(m), reason))
		}
	}
	if len(bad) == 0 {
		c.Status = StatusOK
		c.Detail = allAnswer(len(members))
		return c
	}
	c.Status = StatusBlocker
	c.Detail = strings.Join(bad, "; ")
	c.Remedy = "bring every member back to health first (etcdctl endpoint health on every endpoint): each upgrade step stops one member, and with another already down the cluster loses quorum"
	return c
}

// checkMembership compares the v3 member list with --endpoints: a member
// preflight cannot reach is a member whose version it cannot know.
func checkMembership(f Facts) Check {
	c := Check{Name: "members", Status: StatusOK}
	if f.Cluster == nil {
		c.Status = StatusWarn
		c.Detail = "the member list could not be read (" + orUnknown(f.ClusterErr) + "); only the given --endpoints were checked"
		c.Remedy = "make sure --endpoints lists every member's client URL"
		return c
	}
	given := map[string]bool{}
	givenID := map[uint64]string{}
	for _, m := range f.Members {
		given[normURL(m.Endpoint)] = true
		if m.ID != 0 {
			givenID[m.ID] = normURL(m.Endpoint)
		}
	}
	var missing, learners []string
	matched := map[string]bool{}
	for _, cm := range f.Cluster {
		id := strconv.FormatUint(cm.ID, 16)
		if cm.Name == "" && len(cm.ClientURLs) == 0 {
			missing = append(missing, fmt.Sprintf("member %s (peer %s) was added but never started", id, strings.Join(cm.PeerURLs, ",")))
			continue
		}
		found := false
		if ep, ok := givenID[cm.ID]; ok {
			found, matched[ep] = true, true
		}
		for _, u := range cm.ClientURLs {
			if given[normURL(u)] {
				found, matched[normURL(u)] = true, true
			}
		}
		if !found {
			missing = append(missing, fmt.Sprintf("member %s (%s, client %s) is not in --endpoints", cm.Name, id, strings.Join(cm.ClientURLs, ",")))
		}
		if cm.IsLearner {
			learners = append(learners, cm.Name)
		}
	}
	var strangers []string
	for _, m := range f.Members {
		if !matched[normURL(m.Endpoint)] {
			strangers = append(strangers, m.Endpoint)
		}
	}
	var parts []string
	switch {
	case len(missing) > 0:
		c.Status = StatusBlocker
		parts = append(parts, strings.Join(missing, "; "))
		c.Remedy = "give every member's client URL in --endpoints (or start or remove the member that never started): preflight cannot vouch for a member it does not check"
	case len(strangers) > 0:
		c.Status = StatusWarn
		parts = append(parts, "these endpoints are no member's advertised client URL: "+strings.Join(strangers, ", ")+
			" (a shim, a load balancer or another cluster?)")
		c.Remedy = "point --endpoints at the members' own client URLs (behind the shims), so /version, /metrics and /v2 are the members' own answers"
	case len(learners) > 0:
		c.Status = StatusWarn
		parts = append(parts, "learners: "+strings.Join(learners, ", "))
		c.Remedy = "promote (etcdctl member promote) or remove learners before upgrading"
	default:
		parts = append(parts, givenIn(len(f.Cluster)))
	}
	c.Detail = strings.Join(parts, "; ")
	return c
}

func normURL(u string) string { return strings.TrimRight(strings.ToLower(u), "/") }

func orUnknown(s string) string {
	if s == "" {
		return "unknown error"
	}
	return s
}

func allAnswer(n int) string {
	if n == 1 {
		return "the 1 member answers /health true"
	}
	return fmt.Sprintf("all %d members answer /health true", n)
}

func givenIn(n int) string {
	if n == 1 {
		return "1 member, given in --endpoints"
	}
	return fmt.Sprintf("%d members, each given in --endpoints", n)
}
