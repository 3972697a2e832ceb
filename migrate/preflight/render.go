package preflight

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as one indented JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing JSON report: %w", err)
	}
	return nil
}

// WriteText writes the report for a person: members, checks with remedies,
// the plan, and the verdict last, where the eye ends.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "etcdshim preflight: upgrade to %s\n\nMembers\n", r.Target)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, m := range r.Members {
		name := m.Name
		if name == "" {
			name = "?"
		}
		state := "healthy"
		switch {
		case !m.Reachable:
			state = "unreachable"
		case !m.Healthy:
			state = "unhealthy"
		}
		ver := "-"
		if m.Server != "" {
			ver = m.Server + " (cluster " + m.Cluster + ")"
		}
		role := ""
		if m.Leader {
			role = "leader"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", name, m.Endpoint, ver, state, role)
	}
	_ = tw.Flush()

	b.WriteString("\nChecks\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "  %-9s %s: %s\n", "["+strings.ToUpper(string(c.Status))+"]", c.Name, c.Detail)
		if c.Remedy != "" {
			fmt.Fprintf(&b, "  %-9s remedy: %s\n", "", c.Remedy)
		}
	}

	switch {
	case len(r.Plan) == 0:
		b.WriteString("\nPlan\n  nothing to upgrade\n")
	default:
		if r.Blockers() > 0 {
			b.WriteString("\nPlan (once the blockers are resolved)\n")
		} else {
			b.WriteString("\nPlan\n")
		}
		for i, s := range r.Plan {
			head := s.Action
			if s.Member != "" {
				head += " " + s.Member
			}
			if s.From != "" {
				head += " (" + s.From + " → " + s.To + ")"
			}
			fmt.Fprintf(&b, "  %d. %s: %s\n", i+1, head, s.Text)
			if s.Command != "" {
				fmt.Fprintf(&b, "     $ %s\n", s.Command)
			}
		}
	}

	warns := 0
	for _, c := range r.Checks {
		if c.Status == StatusWarn {
			warns++
		}
	}
	fmt.Fprintf(&b, "\nVerdict: %s (%s, %s)\n", strings.ToUpper(string(r.Verdict)), plural(r.Blockers(), "blocker"), plural(warns, "warning"))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}
