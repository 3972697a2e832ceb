package preflight

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Version is an etcd release; Patch is -1 when only major.minor was given.
type Version struct{ Major, Minor, Patch int }

// ParseVersion reads "3.6", "v3.6", "3.5.35" or "3.5.0".
func ParseVersion(s string) (Version, error) {
	core := strings.TrimPrefix(strings.TrimSpace(s), "v")
	// A pre-release or build suffix ("3.6.0-rc.1") counts as its release.
	if j := strings.IndexAny(core, "-+"); j >= 0 {
		core = core[:j]
	}
	parts := strings.Split(core, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR or MAJOR.MINOR.PATCH", s)
	}
	v := Version{Patch: -1}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return Version{}, fmt.Errorf("version %q: %q is not a number", s, p)
		}
		switch i {
		case 0:
			v.Major = n
		case 1:
			v.Minor = n
		case 2:
			v.Patch = n
		}
	}
	return v, nil
}

// MinorString is "3.5".
func (v Version) MinorString() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

func (v Version) String() string {
	if v.Patch < 0 {
		return v.MinorString()
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// cmpMinor compares major.minor only.
func (v Version) cmpMinor(o Version) int {
	if v.Major != o.Major {
		return v.Major - o.Major
	}
	return v.Minor - o.Minor
}

// next is the following minor release.
func (v Version) next() Version { return Version{Major: v.Major, Minor: v.Minor + 1, Patch: -1} }

// ValidateTarget accepts etcd 3 minors from 3.1 on.
func ValidateTarget(s string) (Version, error) {
	v, err := ParseVersion(s)
	if err != nil {
		return v, err
	}
	if v.Major != 3 || v.Minor < 1 {
		return v, fmt.Errorf("target %q: preflight plans etcd 3 upgrades (3.1 and later)", s)
	}
	if v.Patch >= 0 {
		// Read as its minor, 3.5.1 would silently plan for any 3.5 patch.
		return v, fmt.Errorf("target %q: give the minor version to upgrade to, %s; which %s patch to install is yours (etcd's upgrade guides recommend the latest)",
			s, v.MinorString(), v.MinorString())
	}
	return Version{Major: v.Major, Minor: v.Minor, Patch: -1}, nil
}

// minPatchBefore is the lowest patch of the previous minor that etcd's
// upgrade guide supports for a rolling upgrade to the key: "all of your 3.5
// members are updated to 3.5.26 or later" (upgrade_3_6), "3.6.11 or later"
// (upgrade_3_7).
var minPatchBefore = map[string]Version{
	"3.6": {3, 5, 26},
	"3.7": {3, 6, 11},
}

// runningVersion is one member's parsed /version.
type runningVersion struct {
	name            string
	server, cluster Version
	hasCluster      bool
}

// checkVersionPath decides whether target is one supported step from what
// the members run. members are the reachable members only.
func checkVersionPath(target Version, members []MemberFacts) (Check, []Check) {
	c := Check{Name: "version-path"}
	var rv []runningVersion
	var unparsable []string
	for _, m := range members {
		sv, err := ParseVersion(m.Server)
		if err != nil {
			unparsable = append(unparsable, fmt.Sprintf("%s (%q)", displayName(m), m.Server))
			continue
		}
		r := runningVersion{name: displayName(m), server: sv}
		if cv, err := ParseVersion(m.Cluster); err == nil {
			r.cluster, r.hasCluster = cv, true
		}
		rv = append(rv, r)
	}
	if len(unparsable) > 0 {
		c.Status = StatusBlocker
		c.Detail = "these members did not report a server version on /version: " + strings.Join(unparsable, ", ")
		c.Remedy = "check that --endpoints are the members' own client URLs and that they answer /version"
		return c, nil
	}
	if len(rv) == 0 {
		c.Status = StatusBlocker
		c.Detail = "no member reported its version"
		c.Remedy = "make the members reachable (see the health check) and run preflight again"
		return c, nil
	}
	sort.SliceStable(rv, func(i, j int) bool { return rv[i].server.cmpMinor(rv[j].server) < 0 })
	lo, hi := rv[0].server, rv[len(rv)-1].server
	var cluster Version
	hasCluster := false
	for _, r := range rv {
		if r.hasCluster && (!hasCluster || r.cluster.cmpMinor(cluster) < 0) {
			cluster, hasCluster = r.cluster, true
		}
	}
	clusterStr := "unknown (not decided yet)"
	if hasCluster {
		clusterStr = cluster.MinorString()
	}
	byMinor := func() string {
		groups := map[string][]string{}
		var keys []string
		for _, r := range rv {
			k := r.server.String()
			if _, ok := groups[k]; !ok {
				keys = append(keys, k)
			}
			groups[k] = append(groups[k], r.name)
		}
		var parts []string
		for _, k := range keys {
			parts = append(parts, strings.Join(groups[k], ", ")+" on "+k)
		}
		return strings.Join(parts, "; ")
	}
	t := target.MinorString()

	switch {
	case target.cmpMinor(hi) < 0:
		c.Status = StatusBlocker
		c.Detail = fmt.Sprintf("target %s is lower than the running %s (%s): preflight plans upgrades, and a member never goes back by swapping binaries", t, hi.MinorString(), byMinor())
		c.Remedy = "choose a target at or above " + hi.MinorString() + "; to go back, follow etcd's downgrade guide (etcdctl downgrade validate/enable) or restore the snapshot taken before the upgrade"
	case lo.cmpMinor(hi) != 0:
		// Mixed versions: an upgrade is under way.
		switch {
		case hi.cmpMinor(target) == 0 && lo.next().cmpMinor(target) == 0:
			c.Status = StatusWarn
			c.Detail = fmt.Sprintf("an upgrade to %s is in progress (%s); the cluster version stays %s until the last member runs %s", t, byMinor(), clusterStr, t)
			c.Remedy = fmt.Sprintf("carry on: upgrade the members still on %s (the plan lists them, leader last)", lo.MinorString())
		case lo.next().cmpMinor(hi) == 0:
			c.Status = StatusBlocker
			c.Detail = fmt.Sprintf("an upgrade to %s is in progress (%s, cluster version %s); %s is not the next step from it", hi.MinorString(), byMinor(), clusterStr, t)
			c.Remedy = fmt.Sprintf("finish the upgrade to %s first (every member on %s, /version etcdcluster %s.0), then run preflight --target %s again", hi.MinorString(), hi.MinorString(), hi.MinorString(), t)
		default:
			c.Status = StatusBlocker
			c.Detail = fmt.Sprintf("members run versions more than one minor apart (%s): etcd supports mixed versions only one minor apart", byMinor())
			c.Remedy = fmt.Sprintf("bring every member to %s first, one minor at a time", lo.next().MinorString())
		}
	case lo.cmpMinor(target) == 0:
		if hasCluster && cluster.cmpMinor(target) < 0 {
			c.Status = StatusWarn
			c.Detail = fmt.Sprintf("every member runs %s but the cluster version is still %s", t, clusterStr)
			c.Remedy = fmt.Sprintf("wait until /version shows etcdcluster %s.0 (members agree on it a few seconds after the last one joined)", t)
		} else {
			c.Status = StatusOK
			c.Detail = fmt.Sprintf("already there: every member runs %s (%s), cluster version %s; nothing to upgrade", t, byMinor(), clusterStr)
		}
	case lo.next().cmpMinor(target) == 0:
		if !hasCluster || cluster.cmpMinor(lo) != 0 {
			c.Status = StatusBlocker
			c.Detail = fmt.Sprintf("every member runs %s but the cluster version is %s", lo.MinorString(), clusterStr)
			c.Remedy = fmt.Sprintf("wait until /version shows etcdcluster %s.0 on every member before starting %s", lo.MinorString(), t)
		} else {
			c.Status = StatusOK
			c.Detail = fmt.Sprintf("every member runs %s (%s) and the cluster version is %s: %s is the next minor, a supported rolling upgrade", lo.MinorString(), byMinor(), clusterStr, t)
		}
	default:
		c.Status = StatusBlocker
		c.Detail = fmt.Sprintf("the cluster runs %s (%s); %s skips %s, and etcd supports upgrading one minor at a time", lo.MinorString(), byMinor(), t, lo.next().MinorString())
		c.Remedy = fmt.Sprintf("upgrade to %s first, then run preflight --target %s again", lo.next().MinorString(), t)
	}

	// The patch floor matters only for the members still to be upgraded.
	var extra []Check
	if floor, ok := minPatchBefore[t]; ok && c.Status != StatusBlocker {
		var old []string
		for _, r := range rv {
			if r.server.cmpMinor(floor) == 0 && r.server.Patch >= 0 && r.server.Patch < floor.Patch {
				old = append(old, fmt.Sprintf("%s (%s)", r.name, r.server))
			}
		}
		pc := Check{Name: "patch-level", Status: StatusOK,
			Detail: fmt.Sprintf("members still on %s run %s or later, as etcd's upgrade guide asks before %s", floor.MinorString(), floor, t)}
		if len(old) > 0 {
			pc.Status = StatusWarn
			pc.Detail = fmt.Sprintf("etcd's upgrade guide asks for %s or later before upgrading to %s (earlier patches have known upgrade blockers): %s", floor, t, strings.Join(old, ", "))
			pc.Remedy = fmt.Sprintf("first roll every member to the latest %s patch release, then upgrade to %s", floor.MinorString(), t)
		}
		extra = append(extra, pc)
	}
	return c, extra
}

// displayName is the member's name, or its endpoint when unnamed.
func displayName(m MemberFacts) string {
	if m.Name != "" {
		return m.Name
	}
	return m.Endpoint
}

// who is "name (endpoint)", or the endpoint alone when unnamed.
func who(m MemberFacts) string {
	if m.Name != "" {
		return m.Name + " (" + m.Endpoint + ")"
	}
	return m.Endpoint
}

// plural is "1 member", "2 members".
func plural[N int | int64 | uint64](n N, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
