package preflight

import (
	"fmt"
	"sort"
	"strings"
)

// buildPlan orders the upgrade: a snapshot from the leader, then every member
// not yet on the target, followers first (in the order given) and the leader
// last, so leadership moves once, at the end, rather than at every restart.
// leader is an index into members, or -1 when unknown.
func buildPlan(target Version, members []MemberFacts, leader int) []Step {
	t := target.MinorString()
	var plan []Step
	upgrades := buildUpgrades(target, members, leader)
	if len(upgrades) == 0 {
		return []Step{}
	}
	if leader >= 0 {
		l := members[leader]
		plan = append(plan, Step{
			Action:   "snapshot",
			Member:   displayName(l),
			Endpoint: l.Endpoint,
			Text:     "save a snapshot from the leader (it has the latest data); it is the only way back once every member runs " + t,
			Command:  "etcdctl --endpoints " + l.Endpoint + " snapshot save backup.db",
		})
	}
	plan = append(plan, withLeaderMove(upgrades, members, leader)...)
	var eps []string
	for _, m := range members {
		eps = append(eps, m.Endpoint)
	}
	last := members[0].Endpoint
	if leader >= 0 {
		last = members[leader].Endpoint
	}
	return append(plan, Step{
		Action:  "verify",
		Text:    fmt.Sprintf("after the last member, /version shows etcdcluster %s.0 on every member and every endpoint is healthy", t),
		Command: "etcdctl --endpoints " + strings.Join(eps, ",") + " endpoint health && curl -s " + last + "/version",
	})
}

// withLeaderMove puts a move-leader step before the leader's upgrade: a
// leader stopped with SIGTERM hands leadership over only after it has stopped
// serving, and writes proposed through it meanwhile time out with an unknown
// outcome; moved while it still serves, the hand-over loses nothing.
func withLeaderMove(upgrades []Step, members []MemberFacts, leader int) []Step {
	if leader < 0 || len(members) < 2 || len(upgrades) == 0 || upgrades[len(upgrades)-1].Endpoint != members[leader].Endpoint {
		return upgrades
	}
	// The follower upgraded first if there is one (upgrades[0] is the
	// leader itself only when nothing else is upgraded), else any member.
	to := -1
	for i := range members {
		if i != leader && members[i].ID != 0 && (to < 0 || members[i].Endpoint == upgrades[0].Endpoint) {
			to = i
		}
	}
	if to < 0 {
		return upgrades
	}
	l, m := members[leader], members[to]
	move := Step{
		Action:   "move-leader",
		Member:   displayName(l),
		Endpoint: l.Endpoint,
		Text: fmt.Sprintf("move leadership from %s to %s while %s still serves, so stopping it loses no proposal",
			displayName(l), displayName(m), displayName(l)),
		Command: fmt.Sprintf("etcdctl --endpoints %s move-leader %x", l.Endpoint, m.ID),
	}
	out := append([]Step(nil), upgrades[:len(upgrades)-1]...)
	return append(out, move, upgrades[len(upgrades)-1])
}

// buildUpgrades is one step per member not yet on target, leader last.
func buildUpgrades(target Version, members []MemberFacts, leader int) []Step {
	t := target.MinorString()
	var plan []Step
	order := make([]int, 0, len(members))
	for i := range members {
		order = append(order, i)
	}
	// Stable: followers keep the --endpoints order; the leader goes last.
	sort.SliceStable(order, func(a, b int) bool { return order[b] == leader && order[a] != leader })
	for _, i := range order {
		m := members[i]
		if v, err := ParseVersion(m.Server); err == nil && v.cmpMinor(target) >= 0 {
			continue // already upgraded
		}
		role := "follower"
		if i == leader {
			role = "leader, last"
		}
		from := m.Server
		if from == "" {
			from = "unknown"
		}
		plan = append(plan, Step{
			Action:   "upgrade",
			Member:   displayName(m),
			Endpoint: m.Endpoint,
			From:     from,
			To:       t,
			Text: fmt.Sprintf("(%s) stop %s with SIGTERM, start the etcd %s binary (latest %s patch) on the same data directory with the same flags, then wait until it is healthy and /version shows etcdserver %s",
				role, displayName(m), t, t, t),
			Command: "etcdctl --endpoints " + m.Endpoint + " endpoint health",
		})
	}
	return plan
}
