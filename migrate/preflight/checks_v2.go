package preflight

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

var v36 = Version{Major: 3, Minor: 6, Patch: -1}

const offlineV2Check = "etcdutl check v2store --data-dir <a copy of the member's data dir> (etcdutl 3.5.18 or later; 3.5.32 and later also read the WAL)"

// v2Summary is the v2 API's answer across the reachable members.
type v2Summary struct {
	served, off, failed []string
	nodes, users, roles []string
	authOn              bool
}

func summariseV2(members []MemberFacts) v2Summary {
	var s v2Summary
	nodes, users, roles := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, m := range members {
		switch {
		case m.V2.Status == http.StatusOK:
			s.served = append(s.served, displayName(m))
		case m.V2.Status == http.StatusNotFound:
			s.off = append(s.off, displayName(m))
		default:
			why := m.V2.Err
			if why == "" {
				why = fmt.Sprintf("HTTP %d", m.V2.Status)
			}
			s.failed = append(s.failed, displayName(m)+" ("+why+")")
		}
		s.authOn = s.authOn || m.V2.AuthEnabled
		for _, n := range m.V2.Nodes {
			nodes[n] = true
		}
		for _, u := range m.V2.Users {
			users[u] = true
		}
		for _, r := range m.V2.Roles {
			roles[r] = true
		}
	}
	s.nodes, s.users, s.roles = keys(nodes), keys(users), keys(roles)
	return s
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s v2Summary) custom() bool { return s.authOn || len(s.nodes)+len(s.users)+len(s.roles) > 0 }

func (s v2Summary) describe() string {
	var parts []string
	if len(s.nodes) > 0 {
		shown := s.nodes
		more := ""
		if len(shown) > 10 {
			shown, more = shown[:10], fmt.Sprintf(" and %d more", len(s.nodes)-10)
		}
		parts = append(parts, "top-level nodes "+strings.Join(shown, ", ")+more)
	}
	if s.authOn {
		parts = append(parts, "v2 auth enabled")
	}
	if len(s.users) > 0 {
		parts = append(parts, "v2 auth users "+strings.Join(s.users, ", "))
	}
	if len(s.roles) > 0 {
		parts = append(parts, "v2 auth roles "+strings.Join(s.roles, ", "))
	}
	return strings.Join(parts, "; ")
}

// checkV2Data looks for custom content in the v2 store, which etcd 3.6
// refuses at startup ("detected disallowed custom content in v2store"). Over
// the network only the v2 API can show it, and only where it is on; the
// top-level listing also hides nodes whose names start with "_".
func checkV2Data(target Version, members []MemberFacts) Check {
	c := Check{Name: "v2-data", Status: StatusOK}
	s := summariseV2(members)
	refuses := target.cmpMinor(v36) >= 0
	switch {
	case s.custom() && refuses:
		c.Status = StatusBlocker
		c.Detail = fmt.Sprintf("the v2 store holds custom content (%s, seen on %s); etcd %s refuses to start on it: \"detected disallowed custom content in v2store\"",
			s.describe(), strings.Join(s.served, ", "), target.MinorString())
		c.Remedy = v2Remedy
	case s.custom():
		c.Status = StatusWarn
		c.Detail = fmt.Sprintf("the v2 store holds custom content (%s, seen on %s); %s still keeps it, but 3.6 will refuse to start on it",
			s.describe(), strings.Join(s.served, ", "), target.MinorString())
		c.Remedy = "plan it now, before 3.6: " + v2Remedy
	case len(s.served) > 0 && refuses:
		c.Status = StatusWarn
		c.Detail = fmt.Sprintf("the v2 API is on (--enable-v2) on %s and lists no keys; 3.6 has no --enable-v2 flag, and a listing cannot show top-level nodes named _*", strings.Join(s.served, ", "))
		c.Remedy = "remove --enable-v2 (and ETCD_ENABLE_V2) from every member before starting 3.6, then confirm offline: " + offlineV2Check
	case len(s.served) > 0:
		c.Detail = fmt.Sprintf("the v2 API is on on %s and lists no keys (top-level nodes named _* are not listed)", strings.Join(s.served, ", "))
	case len(s.off) > 0:
		c.Detail = fmt.Sprintf("the v2 API is off on %s (404), so v2 data could not be checked over the network; a cluster that never ran with --enable-v2 has none", strings.Join(s.off, ", "))
		if refuses {
			c.Remedy = "if v2 was ever on, check offline before the upgrade: " + offlineV2Check
		}
	}
	if len(members) == 0 {
		c.Status = StatusWarn
		c.Detail = "no member answered, so v2 data was not checked"
		c.Remedy = "check offline: " + offlineV2Check
	}
	if len(s.failed) > 0 {
		c.Status = worse(c.Status, StatusWarn)
		c.Detail += "; the v2 API could not be asked on " + strings.Join(s.failed, ", ")
		if c.Remedy == "" {
			c.Remedy = "check offline: " + offlineV2Check
		}
	}
	return c
}

const v2Remedy = "(1) copy the v2 data into v3, where the shim serves v2 clients from: etcdshim v2 import --from <a member serving v2> --endpoints <members>, then etcdshim v2 verify with the same flags (README \"Importing v2 data\"); " +
	"(2) with --enable-v2 still on, delete it from the v2 store: ETCDCTL_API=2 etcdctl --endpoints <member> rm -r /<dir> (rm /<key> for keys) for each top-level node, and for v2 auth: auth disable, user remove, role remove; " +
	"(3) remove --enable-v2 from every member and let each save a fresh v2 snapshot (restart it once with --snapshot-count=1, then restore its value and restart again), as etcd's 3.5→3.6 upgrade guide says; " +
	"(4) confirm on every member: " + offlineV2Check

// checkV2WAL is the 3.5→3.6 step's second v2 trap: 3.6 refuses to replay v2
// requests found in the WAL after the last snapshot ("detected disallowed v2
// WAL for stage --v2-deprecation=write-only"). Whether such entries exist
// cannot be seen over the network; v2 writes being possible (the v2 API on)
// makes it a warning, otherwise the check says what to do if the cluster ran
// 3.4 or v2 recently. It applies only when 3.5 members will start 3.6.
func checkV2WAL(target Version, members []MemberFacts) (Check, bool) {
	if target.cmpMinor(v36) != 0 {
		return Check{}, false
	}
	on35 := false
	var snaps []string
	for _, m := range members {
		if v, err := ParseVersion(m.Server); err == nil && v.cmpMinor(Version{3, 5, -1}) == 0 {
			on35 = true
			if m.SnapshotsSaved != nil {
				snaps = append(snaps, fmt.Sprintf("%s %.0f", displayName(m), *m.SnapshotsSaved))
			}
		}
	}
	if !on35 {
		return Check{}, false
	}
	s := summariseV2(members)
	c := Check{Name: "v2-wal", Status: StatusOK}
	c.Remedy = "make every 3.5 member save a snapshot after its last v2 write (and after the cluster version moved to 3.5): write more entries than --snapshot-count, or restart it once with --snapshot-count=1 and then restore the value; " +
		"confirm offline: " + offlineV2Check
	snapInfo := ""
	if len(snaps) > 0 {
		snapInfo = "; snapshots saved since each 3.5 member started: " + strings.Join(snaps, ", ")
	}
	if len(s.served) > 0 || s.custom() {
		c.Status = StatusWarn
		c.Detail = "the v2 API is on, so v2 writes may sit in the WAL after the last snapshot; 3.6 refuses to replay them (\"detected disallowed v2 WAL for stage --v2-deprecation=write-only\")" + snapInfo
		return c, true
	}
	c.Detail = "the v2 API is off, so no v2 writes reach the WAL now; if this cluster ran 3.4 or served v2 since a member's last snapshot, 3.6 refuses that member's WAL (\"detected disallowed v2 WAL\")" + snapInfo
	return c, true
}
