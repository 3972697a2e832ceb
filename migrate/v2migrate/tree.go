package v2migrate

import (
	"context"
	"fmt"
	"math"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Entry is one v2 node, flat: what import writes and verify compares.
type Entry struct {
	Path  string
	Dir   bool
	Value string
	// TTL is the seconds left (0: none), rounded up as v2 shows it.
	TTL int64
}

// CleanRoot normalises a v2 path as the v2 API does: leading slash, no
// trailing slash, no empty or dot components.
func CleanRoot(p string) string {
	return path.Clean("/" + p)
}

// Flatten lists a tree's nodes, parents before children, in key order; the
// v2 root itself ("/") is no node of its own. TTLs are what is left at at
// (the source reported them at t.ReadAt).
func Flatten(t *Tree, at time.Time) []Entry {
	var out []Entry
	elapsed := at.Sub(t.ReadAt)
	var walk func(n *v2store.Node)
	walk = func(n *v2store.Node) {
		if n.Key != "/" && n.Key != "" {
			e := Entry{Path: n.Key, Dir: n.Dir}
			if n.Value != nil {
				e.Value = *n.Value
			}
			if n.TTL > 0 || n.Expiration != nil {
				e.TTL = max(ttlLeft(n.TTL, elapsed), 1)
			}
			out = append(out, e)
		}
		for _, c := range n.Nodes {
			walk(c)
		}
	}
	walk(t.Root)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// ttlLeft is a v2 TTL (seconds, rounded up) less the time since it was read,
// rounded up again.
func ttlLeft(ttl int64, elapsed time.Duration) int64 {
	if elapsed <= 0 {
		return ttl
	}
	return int64(math.Ceil((time.Duration(ttl)*time.Second - elapsed).Seconds()))
}

// hiddenBelow reports whether p has a hidden component (leading "_") below
// root: v2 listings of root never show such nodes, so neither side of a
// comparison includes them.
func hiddenBelow(root, p string) bool {
	rel := p
	if root != "/" {
		rel = strings.TrimPrefix(p, root)
	}
	for _, c := range strings.Split(rel, "/") {
		if strings.HasPrefix(c, "_") {
			return true
		}
	}
	return false
}

// within reports whether p is root or below it.
func within(root, p string) bool {
	return root == "/" || p == root || strings.HasPrefix(p, root+"/")
}

// destKV is one v3 key of the layout as the destination holds it.
type destKV struct {
	Key    []byte
	Value  []byte
	Lease  int64
	ModRev int64
}

// DestView is the destination's keyspace below a root, read at one revision.
type DestView struct {
	Root    string
	Rev     int64
	Files   map[string]destKV
	Markers map[string]destKV
	// Implied are the directories something exists below (with or
	// without a marker).
	Implied map[string]bool
	// TTLs are the seconds left of the leases asked for (FillTTLs); a lease
	// that is gone has -1.
	TTLs map[int64]int64
}

// IsDir reports whether p is a directory on the destination.
func (v *DestView) IsDir(p string) bool {
	_, m := v.Markers[p]
	return m || v.Implied[p]
}

// readDest reads everything of the layout at root (and the file root
// itself) at one revision, in pages.
func readDest(ctx context.Context, kv pb.KVClient, lay v2store.Layout, root string) (*DestView, error) {
	v := &DestView{Root: root, Files: map[string]destKV{}, Markers: map[string]destKV{}, Implied: map[string]bool{}, TTLs: map[int64]int64{}}
	start, end := lay.Subtree(root)
	from := start
	if root != "/" {
		from = lay.Key(root)
	}
	rev, err := etcdrpc.RangePages(ctx, kv, &pb.RangeRequest{Key: from, RangeEnd: end, Limit: 1000}, func(kvs []*mvccpb.KeyValue) error {
		for _, k := range kvs {
			p, dir, ok := lay.Path(k.Key)
			if !ok || !within(root, p) || (p == "/" && dir) || hiddenBelow(root, p) {
				continue // a sibling such as /a-b between /a and /a/, or hidden
			}
			d := destKV{Key: k.Key, Value: k.Value, Lease: k.Lease, ModRev: k.ModRevision}
			if dir {
				v.Markers[p] = d
			} else {
				v.Files[p] = d
			}
			for _, a := range v2store.Ancestors(p) {
				if within(root, a) {
					v.Implied[a] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the destination below %s: %w", root, err)
	}
	v.Rev = rev
	return v, nil
}

// FillTTLs asks the destination how long each of leases has left (rounded
// up, as v2 shows TTLs).
func (v *DestView) FillTTLs(ctx context.Context, lc pb.LeaseClient, leases []int64) error {
	for _, id := range leases {
		if _, done := v.TTLs[id]; done || id == 0 {
			continue
		}
		r, err := lc.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id})
		if err != nil {
			return fmt.Errorf("reading lease %x on the destination: %w", id, err)
		}
		left := int64(-1)
		if r.TTL >= 0 {
			// v3 rounds the seconds left down; v2 rounds up.
			left = min(r.TTL+1, max(r.GrantedTTL, 1))
		}
		v.TTLs[id] = left
	}
	return nil
}

// Entries is the destination as a v2 client of the shim sees it below the
// root: markers and implied directories are directories (a file key next to
// keys below it shows as the directory), files carry their lease's TTL.
func (v *DestView) Entries() []Entry {
	var out []Entry
	seen := map[string]bool{}
	for p := range v.Markers {
		seen[p] = true
		out = append(out, Entry{Path: p, Dir: true, TTL: v.ttl(v.Markers[p].Lease)})
	}
	for p := range v.Implied {
		if !seen[p] && p != "/" {
			seen[p] = true
			out = append(out, Entry{Path: p, Dir: true})
		}
	}
	for p, f := range v.Files {
		if seen[p] {
			continue
		}
		out = append(out, Entry{Path: p, Value: string(f.Value), TTL: v.ttl(f.Lease)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (v *DestView) ttl(lease int64) int64 {
	if lease == 0 {
		return 0
	}
	if t, ok := v.TTLs[lease]; ok && t > 0 {
		return t
	}
	return 0
}

// leases lists every lease the view's keys hold.
func (v *DestView) leases() []int64 {
	var out []int64
	for _, m := range []map[string]destKV{v.Files, v.Markers} {
		for _, d := range m {
			if d.Lease != 0 {
				out = append(out, d.Lease)
			}
		}
	}
	return out
}
