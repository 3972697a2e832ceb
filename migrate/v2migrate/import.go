package v2migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
)

// Defaults of Options.
const (
	// DefaultBatchSize keeps a transaction's puts and compares under etcd's
	// default --max-txn-ops (128).
	DefaultBatchSize = 100
	// DefaultBatchBytes keeps a transaction well under etcd's default
	// --max-request-bytes (1.5 MiB).
	DefaultBatchBytes = 512 * 1024
	// DefaultParallel transactions in flight.
	DefaultParallel = 4
	// DefaultTTLTolerance is how far TTLs may differ and still count as equal.
	DefaultTTLTolerance = 5 * time.Second
)

// Options configure a Migrator.
type Options struct {
	// Roots are the v2 subtrees to copy: the source prefix, and hidden
	// paths (v2 listings never show them, so they must be named).
	Roots []string
	// DryRun plans and counts but writes nothing.
	DryRun bool
	// Prune deletes destination nodes below the roots that the source does
	// not have (following does so on every re-read).
	Prune        bool
	BatchSize    int
	BatchBytes   int
	Parallel     int
	TTLTolerance time.Duration
	// Progress receives counts as the import goes; nil shows nothing.
	Progress *Progress
	Logger   *zap.Logger
}

// Migrator copies, follows and verifies a source's v2 keyspace.
type Migrator struct {
	src   *Source
	kv    pb.KVClient
	lease pb.LeaseClient
	lay   v2store.Layout
	o     Options
	log   *zap.Logger
}

// New returns a Migrator from src into the layout under v2Prefix on cc.
func New(src *Source, cc grpc.ClientConnInterface, v2Prefix string, o Options) *Migrator {
	if len(o.Roots) == 0 {
		o.Roots = []string{"/"}
	}
	for i, r := range o.Roots {
		o.Roots[i] = CleanRoot(r)
	}
	if o.BatchSize <= 0 || o.BatchSize > 120 {
		o.BatchSize = DefaultBatchSize
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.TTLTolerance <= 0 {
		o.TTLTolerance = DefaultTTLTolerance
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Migrator{src: src, kv: etcdrpc.NewKVClient(cc), lease: etcdrpc.NewLeaseClient(cc),
		lay: v2store.NewLayout(v2Prefix), o: o, log: o.Logger}
}

// Conflict is a node the destination's shape refuses: a file where the
// source has a directory, or a directory where the source has a file.
type Conflict struct {
	Path   string
	Reason string
	// Blocked counts the source nodes below it that were not written.
	Blocked int
}

func (c Conflict) String() string {
	s := fmt.Sprintf("conflict: %s: %s", c.Path, c.Reason)
	if c.Blocked > 0 {
		s += fmt.Sprintf(" (%d nodes below it not imported)", c.Blocked)
	}
	return s
}

// Summary counts what an import did (or, dry, would do).
type Summary struct {
	DryRun    bool
	Dirs      int // directories written
	Keys      int // files written
	Bytes     int64
	Skipped   int // nodes already equal on the destination
	WithTTL   int // written nodes with a TTL
	Deleted   int // destination keys pruned
	Conflicts []Conflict
	Duration  time.Duration
	// Indexes is the source's X-Etcd-Index of each root's read.
	Indexes map[string]uint64
	// Planned lists, in a dry run, every write and deletion the import
	// would make, in path order.
	Planned []Planned
}

// Planned is one node a dry run would write or delete.
type Planned struct {
	// Action is "create" (not on the destination), "update" (there, but
	// its value, TTL or shape marker differs) or "delete" (--prune: the
	// source lacks it).
	Action string `json:"action"`
	Path   string `json:"path"`
	Dir    bool   `json:"dir"`
	// Bytes is the value's size; values are not shown (they may be secrets).
	Bytes int   `json:"bytes"`
	TTL   int64 `json:"ttl,omitempty"`
}

func (p Planned) String() string {
	s := "would " + p.Action + " "
	if p.Dir {
		s += "dir " + p.Path
	} else {
		s += "key " + p.Path
		if p.Action != "delete" {
			s += fmt.Sprintf(" (%d bytes)", p.Bytes)
		}
	}
	if p.TTL > 0 {
		s += ", ttl " + ttlText(p.TTL)
	}
	return s
}

// Nodes is every source node the import looked at.
func (s Summary) Nodes() int {
	n := s.Dirs + s.Keys + s.Skipped
	for _, c := range s.Conflicts {
		n += 1 + c.Blocked
	}
	return n
}

// KeysPerSecond is the import's throughput over the source's nodes.
func (s Summary) KeysPerSecond() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Nodes()) / s.Duration.Seconds()
}

func (s Summary) String() string {
	verb := "imported"
	if s.DryRun {
		verb = "would import"
	}
	return fmt.Sprintf("%s %d dirs, %d keys, %s; skipped %d already equal; %d with TTL; %d pruned; %d conflicts; in %s (%.0f keys/s)",
		verb, s.Dirs, s.Keys, humanBytes(s.Bytes), s.Skipped, s.WithTTL, s.Deleted, len(s.Conflicts),
		s.Duration.Round(time.Millisecond), s.KeysPerSecond())
}

func (s *Summary) add(o Summary) {
	s.Dirs += o.Dirs
	s.Keys += o.Keys
	s.Bytes += o.Bytes
	s.Skipped += o.Skipped
	s.WithTTL += o.WithTTL
	s.Deleted += o.Deleted
	s.Conflicts = append(s.Conflicts, o.Conflicts...)
	s.Planned = append(s.Planned, o.Planned...)
}

// ErrConflicts is wrapped by Import's error when some nodes were refused.
var ErrConflicts = errors.New("destination conflicts")

// Import copies every root once. The error wraps ErrConflicts when nodes
// were refused (everything else was written).
func (m *Migrator) Import(ctx context.Context) (Summary, error) {
	start := time.Now()
	sum := Summary{DryRun: m.o.DryRun, Indexes: map[string]uint64{}}
	for _, root := range m.o.Roots {
		s, idx, err := m.importRoot(ctx, root, m.o.Prune)
		sum.add(s)
		sum.Indexes[root] = idx
		if err != nil {
			sum.Duration = time.Since(start)
			return sum, err
		}
	}
	sum.Duration = time.Since(start)
	if len(sum.Conflicts) > 0 {
		return sum, fmt.Errorf("%d %w (the rest was imported)", len(sum.Conflicts), ErrConflicts)
	}
	return sum, nil
}

// importRoot reads root on both sides and writes what differs.
func (m *Migrator) importRoot(ctx context.Context, root string, prune bool) (Summary, uint64, error) {
	tree, err := m.src.ReadTree(ctx, root)
	if err != nil {
		return Summary{}, 0, err
	}
	s, err := m.sync(ctx, root, tree, prune)
	if err == nil {
		m.warnInOrderAhead(ctx, root, tree)
	}
	return s, tree.Index, err
}

// sync makes the destination below root equal tree (pruning extra nodes
// when prune).
func (m *Migrator) sync(ctx context.Context, root string, tree *Tree, prune bool) (Summary, error) {
	var sum Summary
	sum.DryRun = m.o.DryRun
	dest, err := readDest(ctx, m.kv, m.lay, root)
	if err != nil {
		return sum, err
	}
	src := Flatten(tree, time.Now())
	if prune {
		dels := pruneList(src, dest)
		sum.Deleted = len(dels)
		if m.o.DryRun {
			sum.Planned = append(sum.Planned, plannedDeletes(src, dest)...)
		}
		if len(dels) > 0 && !m.o.DryRun {
			if err := m.deleteKeys(ctx, dels); err != nil {
				return sum, err
			}
			if dest, err = readDest(ctx, m.kv, m.lay, root); err != nil {
				return sum, err
			}
		}
	}
	var leases []int64
	for _, e := range src {
		if d, ok := m.destKV(dest, e); ok && d.Lease != 0 && e.TTL > 0 {
			leases = append(leases, d.Lease)
		}
	}
	if err := dest.FillTTLs(ctx, m.lease, leases); err != nil {
		return sum, err
	}
	p := plan(src, dest, m.o.TTLTolerance)
	sum.Skipped, sum.Conflicts = p.skipped, p.conflicts
	var total int64
	for _, e := range src {
		total += int64(len(e.Value))
	}
	m.o.Progress.Start(root, len(src), total)
	m.o.Progress.Add(p.skipped+p.blocked(), 0)
	if m.o.DryRun {
		for _, e := range p.writes {
			sum.count(e)
			action := "create"
			if _, ok := m.destKV(dest, e); ok {
				action = "update"
			}
			sum.Planned = append(sum.Planned, Planned{Action: action, Path: e.Path, Dir: e.Dir, Bytes: len(e.Value), TTL: e.TTL})
		}
		sort.SliceStable(sum.Planned, func(i, j int) bool { return sum.Planned[i].Path < sum.Planned[j].Path })
		m.o.Progress.Add(len(p.writes), sum.Bytes)
		m.o.Progress.Done()
		return sum, nil
	}
	if len(p.ancestors) > 0 {
		if err := m.ensureMarkers(ctx, p.ancestors); err != nil {
			return sum, err
		}
	}
	written, conflicts, err := m.writeAll(ctx, p.writes, tree.ReadAt)
	m.o.Progress.Done()
	for _, e := range written {
		sum.count(e)
	}
	sum.Conflicts = append(sum.Conflicts, conflicts...)
	return sum, err
}

func (s *Summary) count(e Entry) {
	if e.Dir {
		s.Dirs++
	} else {
		s.Keys++
		s.Bytes += int64(len(e.Value))
	}
	if e.TTL > 0 {
		s.WithTTL++
	}
}

func (m *Migrator) destKV(dest *DestView, e Entry) (destKV, bool) {
	if e.Dir {
		d, ok := dest.Markers[e.Path]
		return d, ok
	}
	d, ok := dest.Files[e.Path]
	return d, ok
}

// importPlan is what an import must write.
type importPlan struct {
	writes    []Entry
	skipped   int
	conflicts []Conflict
	// ancestors are the root's parent directories without a marker.
	ancestors []string
}

func (p importPlan) blocked() int {
	n := 0
	for _, c := range p.conflicts {
		n += 1 + c.Blocked
	}
	return n
}

// plan compares the source nodes (parents before children) with the
// destination: equal nodes are skipped, a node whose shape the destination
// contradicts is a conflict and blocks its subtree, the rest is written.
func plan(src []Entry, dest *DestView, tol time.Duration) importPlan {
	var p importPlan
	if dest.Root != "/" {
		for _, a := range v2store.Ancestors(dest.Root) {
			if _, ok := dest.Markers[a]; !ok {
				p.ancestors = append(p.ancestors, a)
			}
		}
	}
	blockedUnder := ""
	for _, e := range src {
		if blockedUnder != "" && strings.HasPrefix(e.Path, blockedUnder+"/") {
			p.conflicts[len(p.conflicts)-1].Blocked++
			continue
		}
		blockedUnder = ""
		if e.Dir {
			if _, isFile := dest.Files[e.Path]; isFile {
				p.conflicts = append(p.conflicts, Conflict{Path: e.Path, Reason: "the destination has a file where the source has a directory"})
				blockedUnder = e.Path
				continue
			}
			if d, ok := dest.Markers[e.Path]; ok && ttlEqual(e.TTL, d.Lease, dest.TTLs, tol) {
				p.skipped++
				continue
			}
			p.writes = append(p.writes, e)
			continue
		}
		if dest.IsDir(e.Path) {
			p.conflicts = append(p.conflicts, Conflict{Path: e.Path, Reason: "the destination has a directory where the source has a file"})
			continue
		}
		if d, ok := dest.Files[e.Path]; ok && string(d.Value) == e.Value && ttlEqual(e.TTL, d.Lease, dest.TTLs, tol) {
			p.skipped++
			continue
		}
		p.writes = append(p.writes, e)
	}
	return p
}

// ttlEqual compares a source TTL with a destination key's lease.
func ttlEqual(ttl, lease int64, ttls map[int64]int64, tol time.Duration) bool {
	if ttl == 0 || lease == 0 {
		return ttl == 0 && lease == 0
	}
	left, ok := ttls[lease]
	return ok && left > 0 && ttlClose(ttl, left, tol)
}

// prunable calls fn for each destination key below the root that the
// source does not have: files where the source has no file, markers where
// it has no directory.
func prunable(src []Entry, dest *DestView, fn func(p string, dir bool, kv destKV)) {
	files, dirs := map[string]bool{}, map[string]bool{}
	for _, e := range src {
		if e.Dir {
			dirs[e.Path] = true
		} else {
			files[e.Path] = true
		}
	}
	for p, d := range dest.Files {
		if !files[p] {
			fn(p, false, d)
		}
	}
	for p, d := range dest.Markers {
		if !dirs[p] {
			fn(p, true, d)
		}
	}
}

// pruneList lists the keys prune deletes.
func pruneList(src []Entry, dest *DestView) []destKV {
	var out []destKV
	prunable(src, dest, func(_ string, _ bool, d destKV) { out = append(out, d) })
	return out
}

// plannedDeletes names what pruneList would delete, for a dry run.
func plannedDeletes(src []Entry, dest *DestView) []Planned {
	var out []Planned
	prunable(src, dest, func(p string, dir bool, _ destKV) {
		out = append(out, Planned{Action: "delete", Path: p, Dir: dir})
	})
	return out
}

// ensureMarkers creates missing markers of the root's parents (no TTL).
func (m *Migrator) ensureMarkers(ctx context.Context, dirs []string) error {
	var ops []*pb.RequestOp
	var cmp []*pb.Compare
	for _, a := range dirs {
		cmp = append(cmp, m.lay.NotFile(a))
		ops = append(ops, opTxn([]*pb.Compare{versionIs(m.lay.Marker(a), 0)}, []*pb.RequestOp{opPut(m.lay.Marker(a), "", 0)}))
	}
	r, err := m.kv.Txn(ctx, &pb.TxnRequest{Compare: cmp, Success: ops})
	if err != nil {
		return fmt.Errorf("creating the parent directories of %s: %w", dirs[len(dirs)-1], err)
	}
	if !r.Succeeded {
		return fmt.Errorf("a parent directory of the import root is a file on the destination (one of %s)", strings.Join(dirs, ", "))
	}
	return nil
}

// writeAll writes entries in batched transactions, Parallel at a time. A
// batch whose compares fail (a concurrent writer changed a node's shape) is
// retried node by node, and the nodes still refused are conflicts.
func (m *Migrator) writeAll(ctx context.Context, entries []Entry, readAt time.Time) ([]Entry, []Conflict, error) {
	var (
		mu        sync.Mutex
		written   []Entry
		conflicts []Conflict
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.o.Parallel)
	for _, b := range batches(entries, m.o.BatchSize, m.o.BatchBytes) {
		g.Go(func() error {
			w, c, err := m.writeBatch(gctx, b, readAt)
			mu.Lock()
			written = append(written, w...)
			conflicts = append(conflicts, c...)
			mu.Unlock()
			var bytes int64
			for _, e := range w {
				bytes += int64(len(e.Value))
			}
			m.o.Progress.Add(len(w)+len(c), bytes)
			return err
		})
	}
	err := g.Wait()
	return written, conflicts, err
}

// batches cuts entries into groups of at most n nodes and about maxBytes.
func batches(entries []Entry, n, maxBytes int) [][]Entry {
	var out [][]Entry
	var cur []Entry
	size := 0
	for _, e := range entries {
		sz := len(e.Path) + len(e.Value) + 32
		if len(cur) > 0 && (len(cur) >= n || size+sz > maxBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, e)
		size += sz
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// writeBatch writes one batch in one transaction.
func (m *Migrator) writeBatch(ctx context.Context, b []Entry, readAt time.Time) ([]Entry, []Conflict, error) {
	leases, err := m.grantAll(ctx, b, readAt)
	if err != nil {
		return nil, nil, err
	}
	var cmp []*pb.Compare
	var ops []*pb.RequestOp
	for i, e := range b {
		c, o := m.nodeOps(e, leases[i])
		cmp = append(cmp, c)
		ops = append(ops, o)
	}
	r, err := m.kv.Txn(ctx, &pb.TxnRequest{Compare: cmp, Success: ops})
	if err != nil {
		m.revoke(leases)
		return nil, nil, fmt.Errorf("writing %d nodes from %s: %w", len(b), b[0].Path, err)
	}
	if r.Succeeded {
		return b, nil, nil
	}
	m.revoke(leases)
	if len(b) == 1 {
		return nil, []Conflict{explain(b[0])}, nil
	}
	var written []Entry
	var conflicts []Conflict
	for _, e := range b {
		w, c, err := m.writeBatch(ctx, []Entry{e}, readAt)
		written, conflicts = append(written, w...), append(conflicts, c...)
		if err != nil {
			return written, conflicts, err
		}
	}
	return written, conflicts, nil
}

// nodeOps are the compare guarding one node's shape and its put.
func (m *Migrator) nodeOps(e Entry, lease int64) (*pb.Compare, *pb.RequestOp) {
	if e.Dir {
		return m.lay.NotFile(e.Path), opPut(m.lay.Marker(e.Path), "", lease)
	}
	return m.lay.NotDir(e.Path), opPut(m.lay.Key(e.Path), e.Value, lease)
}

// explain names why a single node's write was refused.
func explain(e Entry) Conflict {
	if e.Dir {
		return Conflict{Path: e.Path, Reason: "the destination has a file where the source has a directory"}
	}
	return Conflict{Path: e.Path, Reason: "the destination has a directory where the source has a file"}
}

// grantAll grants one lease per TTL'd node with the TTL left now.
func (m *Migrator) grantAll(ctx context.Context, b []Entry, readAt time.Time) ([]int64, error) {
	ids := make([]int64, len(b))
	for i, e := range b {
		if e.TTL <= 0 {
			continue
		}
		ttl := max(ttlLeft(e.TTL, time.Since(readAt)), 1)
		r, err := m.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: ttl})
		if err != nil {
			m.revoke(ids)
			return nil, fmt.Errorf("granting a lease for %s: %w", e.Path, err)
		}
		ids[i] = r.ID
	}
	return ids, nil
}

func (m *Migrator) revoke(ids []int64) {
	for _, id := range ids {
		if id == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = m.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
		cancel()
	}
}

// deleteKeys removes destination keys, each only if unchanged since read.
func (m *Migrator) deleteKeys(ctx context.Context, keys []destKV) error {
	for i := 0; i < len(keys); i += m.o.BatchSize {
		b := keys[i:min(i+m.o.BatchSize, len(keys))]
		var cmp []*pb.Compare
		var ops []*pb.RequestOp
		for _, d := range b {
			cmp = append(cmp, modIs(d.Key, d.ModRev))
			ops = append(ops, opDelete(d.Key, nil))
		}
		r, err := m.kv.Txn(ctx, &pb.TxnRequest{Compare: cmp, Success: ops})
		if err != nil {
			return fmt.Errorf("pruning %d keys: %w", len(b), err)
		}
		if r.Succeeded {
			continue
		}
		// Some changed meanwhile: delete the others one by one.
		for _, d := range b {
			if _, err := m.kv.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{modIs(d.Key, d.ModRev)},
				Success: []*pb.RequestOp{opDelete(d.Key, nil)}}); err != nil {
				return fmt.Errorf("pruning %s: %w", d.Key, err)
			}
		}
	}
	return nil
}

// Requests (without PrevKv: an import reads nothing back).

func opPut(key []byte, value string, lease int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: []byte(value), Lease: lease}}}
}

func opDelete(key, end []byte) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: key, RangeEnd: end}}}
}

func opTxn(cmp []*pb.Compare, then []*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Compare: cmp, Success: then}}}
}

func versionIs(key []byte, v int64) *pb.Compare {
	return &pb.Compare{Key: key, Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Version{Version: v}}
}

func modIs(key []byte, rev int64) *pb.Compare {
	return &pb.Compare{Key: key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: rev}}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
