package preflight

import (
	"fmt"
	"sort"
	"strings"
)

// checkLegacy summarises, per surface, the clients the shims still serve on
// legacy surfaces. It never blocks: the shims keep serving those clients
// across the upgrade; the list is what must be migrated before the shims go.
func checkLegacy(shims []ShimFacts) Check {
	c := Check{Name: "legacy-clients", Status: StatusOK}
	if len(shims) == 0 {
		c.Detail = "not checked (no --shims given)"
		return c
	}
	type agg struct {
		requests uint64
		clients  []string
	}
	bySurface := map[string]*agg{}
	var unreachable []string
	for _, s := range shims {
		if s.Err != "" {
			unreachable = append(unreachable, s.URL+" ("+s.Err+")")
			continue
		}
		for _, cl := range s.Clients {
			a := bySurface[cl.Surface]
			if a == nil {
				a = &agg{}
				bySurface[cl.Surface] = a
			}
			a.requests += cl.Requests
			who := cl.Remote
			if cl.UserAgent != "" {
				who += " " + fmt.Sprintf("%q", cl.UserAgent)
			}
			if cl.User != "" {
				who += " user " + cl.User
			}
			a.clients = append(a.clients, fmt.Sprintf("%s ×%d via %s, last %s", who, cl.Requests, s.URL, cl.LastSeen.UTC().Format("2006-01-02 15:04:05Z")))
		}
	}
	surfaces := make([]string, 0, len(bySurface))
	for k := range bySurface {
		surfaces = append(surfaces, k)
	}
	sort.Strings(surfaces)
	var parts []string
	for _, s := range surfaces {
		a := bySurface[s]
		parts = append(parts, fmt.Sprintf("%s: %s, %s (%s)", s, plural(len(a.clients), "client"), plural(a.requests, "request"), strings.Join(a.clients, "; ")))
	}
	switch {
	case len(parts) > 0:
		c.Status = StatusWarn
		c.Detail = "clients still on legacy surfaces — " + strings.Join(parts, " | ")
		c.Remedy = "not a blocker for the upgrade (the shims keep serving them); migrate these clients before removing the shims: v2 clients to v3, /v3beta and /v3alpha to /v3, dashboards to the new metric names (README \"When can the shim go?\")"
	default:
		c.Detail = "no clients on legacy surfaces seen by " + plural(len(shims)-len(unreachable), "shim")
	}
	if len(unreachable) > 0 {
		c.Status = worse(c.Status, StatusWarn)
		c.Detail += "; /debug/legacy could not be read on " + strings.Join(unreachable, ", ")
		if c.Remedy == "" {
			c.Remedy = "check the --shims URLs (the shims' client URLs)"
		}
	}
	return c
}
