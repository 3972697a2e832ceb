package metricsalias

import (
	_ "embed"
	"fmt"
	"os"
	"slices"
	"sort"

	"gopkg.in/yaml.v3"
)

//go:embed aliases.yaml
var defaultTable []byte

// Alias re-exports Source under Name.
type Alias struct {
	Name   string `yaml:"name"`
	Source string `yaml:"source"`
	// SumWithout, when set, sums counter series over these labels (a
	// computed alias rather than a copy).
	SumWithout []string `yaml:"sum_without"`
	// Exclude drops source series whose label equals the value.
	Exclude map[string]string `yaml:"exclude"`
}

func (a Alias) computed() bool { return len(a.SumWithout) > 0 || len(a.Exclude) > 0 }

// Group is a named set of aliases.
type Group struct {
	Description string  `yaml:"description"`
	Aliases     []Alias `yaml:"aliases"`
}

// Table is the alias table.
type Table struct {
	Groups map[string]Group `yaml:"groups"`
}

// LoadTable reads path, or the embedded default when path is "".
func LoadTable(path string) (*Table, error) {
	data := defaultTable
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading metric aliases: %w", err)
		}
		data = b
	}
	var t Table
	dec := yaml.NewDecoder(bytesReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("parsing metric aliases: %w", err)
	}
	return &t, nil
}

// NoAliases is the group list that switches every alias off, the default
// group's included: --metric-alias-groups none.
const NoAliases = "none"

// Active returns the default group's aliases (when the table has one) and
// those of the named groups; groups ["none"] returns no alias at all.
func (t *Table) Active(groups []string) ([]Alias, error) {
	if slices.Contains(groups, NoAliases) {
		if len(groups) > 1 {
			return nil, fmt.Errorf("%q switches every alias off and goes alone, not with %v", NoAliases, groups)
		}
		return nil, nil
	}
	names := groups
	if _, ok := t.Groups["default"]; ok {
		names = append([]string{"default"}, groups...)
	}
	seen := map[string]bool{}
	var out []Alias
	for _, g := range names {
		grp, ok := t.Groups[g]
		if !ok {
			known := make([]string, 0, len(t.Groups))
			for k := range t.Groups {
				known = append(known, k)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("unknown metric alias group %q (known: %v)", g, known)
		}
		for _, a := range grp.Aliases {
			if a.Name == "" || a.Source == "" {
				return nil, fmt.Errorf("metric alias group %q: alias needs name and source", g)
			}
			if !seen[a.Name] {
				seen[a.Name] = true
				out = append(out, a)
			}
		}
	}
	return out, nil
}
