package v2migrate

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Kinds of differences.
const (
	DiffMissing  = "not on the destination"  // on the source, not on the destination
	DiffExtra    = "only on the destination" // the source lacks it: informational
	DiffValue    = "value differs"           // both files, other values
	DiffKind     = "dir/file mismatch"       // a directory on one side, a file on the other
	DiffTTL      = "ttl differs"             // TTLs further apart than the tolerance, or only one has one
	maxValueShow = 60
)

// Difference is one node that differs between source and destination.
type Difference struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Detail string `json:"detail,omitempty"`
}

// Wrong reports whether the destination contradicts the source. A node only
// on the destination is not wrong: v2 clients wrote it through the shim
// after the import, or the source deleted it since (v2 import --prune
// removes such nodes when that is wanted).
func (d Difference) Wrong() bool { return d.Kind != DiffExtra }

func (d Difference) String() string {
	if d.Detail == "" {
		return d.Kind + ": " + d.Path
	}
	return d.Kind + ": " + d.Path + " (" + d.Detail + ")"
}

// Diff compares two flat trees (both in path order or not) node by node.
func Diff(src, dst []Entry, tol time.Duration) []Difference {
	d := map[string]Entry{}
	for _, e := range dst {
		d[e.Path] = e
	}
	var out []Difference
	seen := map[string]bool{}
	for _, s := range src {
		seen[s.Path] = true
		t, ok := d[s.Path]
		switch {
		case !ok:
			out = append(out, Difference{Path: s.Path, Kind: DiffMissing, Detail: describe(s)})
		case s.Dir != t.Dir:
			out = append(out, Difference{Path: s.Path, Kind: DiffKind, Detail: "source " + kind(s) + ", destination " + kind(t)})
		case !s.Dir && s.Value != t.Value:
			out = append(out, Difference{Path: s.Path, Kind: DiffValue, Detail: "source " + show(s.Value) + ", destination " + show(t.Value)})
		case !ttlClose(s.TTL, t.TTL, tol):
			out = append(out, Difference{Path: s.Path, Kind: DiffTTL, Detail: "source " + ttlText(s.TTL) + ", destination " + ttlText(t.TTL)})
		}
	}
	for _, t := range dst {
		if !seen[t.Path] {
			out = append(out, Difference{Path: t.Path, Kind: DiffExtra, Detail: describe(t)})
		}
	}
	// Missing/extra subtrees are reported node by node, parents first.
	sortDiffs(out)
	return out
}

func sortDiffs(ds []Difference) {
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Path < ds[j].Path })
}

// ttlClose compares two TTLs in seconds (0: none) within tol.
func ttlClose(a, b int64, tol time.Duration) bool {
	if a == 0 || b == 0 {
		return a == b
	}
	d := a - b
	if d < 0 {
		d = -d
	}
	return time.Duration(d)*time.Second <= tol
}

func kind(e Entry) string {
	if e.Dir {
		return "dir"
	}
	return "file"
}

func describe(e Entry) string {
	s := kind(e)
	if !e.Dir {
		s += " " + show(e.Value)
	}
	if e.TTL > 0 {
		s += ", ttl " + ttlText(e.TTL)
	}
	return s
}

func show(v string) string {
	if len(v) > maxValueShow {
		return strconv.Quote(v[:maxValueShow]) + fmt.Sprintf("… (%d bytes)", len(v))
	}
	return strconv.Quote(v)
}

func ttlText(t int64) string {
	if t == 0 {
		return "none"
	}
	return fmt.Sprintf("%ds", t)
}

// VerifyResult is what Verify compared.
type VerifyResult struct {
	Differences []Difference
	Dirs, Keys  int // source nodes compared
}

// Wrong counts the differences that are wrong (see Difference.Wrong).
func (r VerifyResult) Wrong() int {
	n := 0
	for _, d := range r.Differences {
		if d.Wrong() {
			n++
		}
	}
	return n
}

// Summary says in plain words what the comparison found.
func (r VerifyResult) Summary() string {
	wrong := r.Wrong()
	extra := len(r.Differences) - wrong
	compared := fmt.Sprintf("%d dirs, %d keys of the source compared", r.Dirs, r.Keys)
	var s string
	if wrong == 0 {
		s = "ok: the destination holds every source node as the source has it; " + compared
	} else {
		s = fmt.Sprintf("%s to fix: the destination lacks or contradicts them (re-run v2 import, or find who changed them); %s",
			plural(wrong, "node"), compared)
	}
	if extra > 0 {
		s += fmt.Sprintf("; %s only on the destination, written through the shim after the import or deleted on the source since (not an error)",
			plural(extra, "node"))
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Verify compares every root's v2 tree on the source with what the
// destination's layout holds (as the shim would serve it to v2 clients).
func (m *Migrator) Verify(ctx context.Context) (VerifyResult, error) {
	var res VerifyResult
	for _, root := range m.o.Roots {
		tree, err := m.src.ReadTree(ctx, root)
		if err != nil {
			return res, err
		}
		dest, err := readDest(ctx, m.kv, m.lay, root)
		if err != nil {
			return res, err
		}
		if err := dest.FillTTLs(ctx, m.lease, dest.leases()); err != nil {
			return res, err
		}
		src := Flatten(tree, time.Now())
		for _, e := range src {
			if e.Dir {
				res.Dirs++
			} else {
				res.Keys++
			}
		}
		res.Differences = append(res.Differences, Diff(src, dest.Entries(), m.o.TTLTolerance)...)
	}
	return res, nil
}
