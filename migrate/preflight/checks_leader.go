package preflight

import (
	"fmt"
	"strconv"
	"strings"
)

// checkLeader finds the leader from each member's etcd_server_is_leader (what
// etcd's upgrade guide reads) and cross-checks it with v3 Status. It returns
// the leader's index in members, or -1.
func checkLeader(members []MemberFacts) (Check, int) {
	c := Check{Name: "leader"}
	var byMetrics []int
	statusLeader := -1
	var statusLeaderID uint64
	for i, m := range members {
		if m.MetricsLeader != nil && *m.MetricsLeader {
			byMetrics = append(byMetrics, i)
		}
		if m.StatusLeaderID != 0 {
			statusLeaderID = m.StatusLeaderID
		}
	}
	for i, m := range members {
		if statusLeaderID != 0 && m.StatusMemberID == statusLeaderID {
			statusLeader = i
		}
	}
	name := func(i int) string { return displayName(members[i]) }
	switch {
	case len(byMetrics) == 1:
		l := byMetrics[0]
		c.Status = StatusOK
		c.Detail = fmt.Sprintf("%s leads (etcd_server_is_leader 1", who(members[l]))
		switch {
		case statusLeader == l:
			c.Detail += "; v3 Status agrees)"
		case statusLeaderID == 0:
			c.Detail += "; v3 Status unavailable)"
		default:
			c.Status = StatusWarn
			c.Detail += fmt.Sprintf("; but v3 Status names %s)", statusName(members, statusLeader, statusLeaderID))
			c.Remedy = "leadership moved while preflight ran; run it again once the cluster is quiet"
		}
		c.Detail += "; the plan upgrades it last"
		return c, l
	case len(byMetrics) > 1:
		var names []string
		for _, i := range byMetrics {
			names = append(names, name(i))
		}
		c.Status = StatusWarn
		c.Detail = "more than one member reports etcd_server_is_leader 1: " + strings.Join(names, ", ")
		c.Remedy = "an election was under way; run preflight again"
		if statusLeader >= 0 {
			c.Detail += fmt.Sprintf("; v3 Status names %s, which the plan upgrades last", name(statusLeader))
			return c, statusLeader
		}
		return c, byMetrics[0]
	case statusLeader >= 0:
		c.Status = StatusOK
		c.Detail = fmt.Sprintf("%s leads (v3 Status; /metrics gave no etcd_server_is_leader); the plan upgrades it last", who(members[statusLeader]))
		return c, statusLeader
	case statusLeaderID != 0:
		c.Status = StatusBlocker
		c.Detail = fmt.Sprintf("v3 Status names leader %x, which is none of --endpoints", statusLeaderID)
		c.Remedy = "give every member's client URL in --endpoints"
		return c, -1
	}
	c.Status = StatusBlocker
	c.Detail = "no member reports being the leader"
	c.Remedy = "the cluster has no leader (lost quorum or an election that does not settle): restore quorum before upgrading"
	return c, -1
}

func statusName(members []MemberFacts, i int, id uint64) string {
	if i >= 0 {
		return displayName(members[i])
	}
	return strconv.FormatUint(id, 16)
}
