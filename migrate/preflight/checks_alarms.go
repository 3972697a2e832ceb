package preflight

import (
	"fmt"
	"strconv"
	"strings"
)

// checkAlarms: an active NOSPACE or CORRUPT alarm makes the cluster refuse
// writes (or hold a diverged member); restarting members on a new binary
// does not clear it and mixes an incident with an upgrade.
func checkAlarms(f Facts) Check {
	c := Check{Name: "alarms"}
	if f.AlarmsErr != "" {
		c.Status = StatusWarn
		c.Detail = "alarms could not be read: " + f.AlarmsErr
		c.Remedy = "check by hand: etcdctl alarm list"
		return c
	}
	if len(f.Alarms) == 0 {
		c.Status = StatusOK
		c.Detail = "no active alarms"
		return c
	}
	names := map[uint64]string{}
	for _, m := range f.Cluster {
		names[m.ID] = m.Name
	}
	var found []string
	var remedies []string
	seen := map[string]bool{}
	for _, a := range f.Alarms {
		who := strconv.FormatUint(a.MemberID, 16)
		if n := names[a.MemberID]; n != "" {
			who = n + " (" + who + ")"
		}
		found = append(found, fmt.Sprintf("%s on %s", a.Type, who))
		if seen[a.Type] {
			continue
		}
		seen[a.Type] = true
		switch a.Type {
		case "NOSPACE":
			remedies = append(remedies, "NOSPACE: free space (etcdctl compact <revision>, etcdctl defrag on every member, or a larger --quota-backend-bytes), then etcdctl alarm disarm")
		case "CORRUPT":
			remedies = append(remedies, "CORRUPT: a member's data diverged; replace it (member remove/add with a fresh data dir) or restore from a snapshot, then etcdctl alarm disarm")
		default:
			remedies = append(remedies, a.Type+": resolve it, then etcdctl alarm disarm")
		}
	}
	c.Status = StatusBlocker
	c.Detail = "active alarms: " + strings.Join(found, ", ")
	c.Remedy = strings.Join(remedies, "; ")
	return c
}
