package v2store

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
)

// V3Store keeps the v2 keyspace in v3 (see the package doc for the layout).
type V3Store struct {
	l     Layout
	kv    pb.KVClient
	lease pb.LeaseClient
	now   func() time.Time
	cache ReadCache
	// timeout bounds the member calls of a Get, which callers give no
	// deadline so that a read the cache answers pays for no timer.
	timeout time.Duration
	// inOrder serialises in-order creates per directory (inorder.go);
	// shared by the per-request copies scoped makes.
	inOrder *inOrder
	// acked is the revision of the newest write this store acknowledged
	// (shared by the scoped copies). The shim sends its writes to the
	// leader (proxy/leader.go), which acknowledges them once it applied
	// them, and reads from its own member, which may not have yet; 3.4
	// answered a write once the member the client talks to had applied it.
	// A plain GET older than acked is read again linearizably, so that a
	// client reads its own writes through one shim as through one member.
	acked *atomic.Int64
}

// DefaultTimeout bounds one v2 request's calls to the member unless the
// caller's context ends sooner (3.4's request timeout is 5s plus a margin
// for the leader election a write may wait out).
const DefaultTimeout = 10 * time.Second

// bound gives ctx the store's timeout unless it has a deadline already.
func (s *V3Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// Ranger is the part of the v3 KV API a read needs.
type Ranger interface {
	Range(ctx context.Context, r *pb.RangeRequest, opts ...grpc.CallOption) (*pb.RangeResponse, error)
}

// ReadCache answers serializable reads from memory. Acquire returns a
// Ranger whose answers are at least as fresh as a serializable range sent
// to the member now would be (so a client reads its own writes), or false
// when the read must go to the member (not ready, credentials it cannot
// check, a barrier that timed out). Every Range on one Ranger answers at one
// revision: its header's.
type ReadCache interface {
	Acquire(ctx context.Context) (Ranger, bool)
}

// WithReadCache serves GETs without quorum=true from c when c can.
func (s *V3Store) WithReadCache(c ReadCache) *V3Store {
	s.cache = c
	return s
}

// WithTimeout bounds one request's calls to the member with d instead of
// DefaultTimeout.
func (s *V3Store) WithTimeout(d time.Duration) *V3Store {
	s.timeout = d
	return s
}

var _ Store = (*V3Store)(nil)

// NewV3 returns a store on cc under prefix ("" or "/something").
func NewV3(cc grpc.ClientConnInterface, prefix string) *V3Store {
	return &V3Store{l: Layout{prefix: prefix}, kv: etcdrpc.NewKVClient(cc), lease: etcdrpc.NewLeaseClient(cc), now: time.Now,
		timeout: DefaultTimeout, inOrder: &inOrder{}, acked: &atomic.Int64{}}
}

// ack records an acknowledged write's revision.
func (s *V3Store) ack(h *pb.ResponseHeader) {
	for rev := h.GetRevision(); ; {
		cur := s.acked.Load()
		if rev <= cur || s.acked.CompareAndSwap(cur, rev) {
			return
		}
	}
}

type ttlInfo struct {
	ttl int64
	exp time.Time
}

// leaseTTLs asks the member how long each lease has left.
func (s *V3Store) leaseTTLs(ctx context.Context, ids map[int64]bool) map[int64]ttlInfo {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	out := make(map[int64]ttlInfo, len(ids))
	now := s.now()
	for id := range ids {
		r, err := s.lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id})
		if err != nil || r.TTL < 0 {
			continue
		}
		// TTL is whole seconds left, rounded down; v2 rounds up.
		ttl := r.TTL + 1
		if r.GrantedTTL > 0 && ttl > r.GrantedTTL {
			ttl = r.GrantedTTL
		}
		out[id] = ttlInfo{ttl: ttl, exp: now.Add(time.Duration(ttl) * time.Second).UTC()}
	}
	return out
}

func applyTTL(n *Node, t ttlInfo, ok bool) {
	if !ok {
		return
	}
	exp := t.exp
	n.Expiration, n.TTL = &exp, t.ttl
}

func (s *V3Store) fileNode(kv *mvccpb.KeyValue, ttls map[int64]ttlInfo) *Node {
	n := s.l.node(kv)
	if kv.Lease != 0 {
		t, ok := ttls[kv.Lease]
		applyTTL(n, t, ok)
	}
	return n
}

// prevNode describes a node as it was before a write (never recursive).
func (s *V3Store) prevNode(ctx context.Context, kv *mvccpb.KeyValue) *Node {
	if kv == nil {
		return nil
	}
	var ttls map[int64]ttlInfo
	if kv.Lease != 0 {
		ttls = s.leaseTTLs(ctx, map[int64]bool{kv.Lease: true})
	}
	return s.fileNode(kv, ttls)
}

// probe is what a failed write's else branch read.
type probe struct {
	// fileAncestor is the first ancestor that is a file (104), and
	// missingAncestor the first that does not exist (100 names it, as 3.4
	// names the first missing path component); at most one is set.
	fileAncestor, missingAncestor string
	isDir                         bool
	target                        *mvccpb.KeyValue
	rev                           uint64
}

// readProbe decodes the reads of probeOps(p), the last of resps, taken at
// rev. It reads nothing itself.
func (l Layout) readProbe(p string, resps []*pb.ResponseOp, rev int64) probe {
	plan := l.probePlan(p)
	pr := probe{rev: uint64(rev)}
	n := len(plan)
	if len(resps) < n {
		return pr
	}
	resps = resps[len(resps)-n:]
	// What the caller may not read is taken as the harmless answer: an
	// ancestor above the grant is no file and exists.
	nAnc := ancestorCount(p)
	file := make([]bool, nAnc)
	missing := make([]bool, nAnc)
	for i, r := range plan {
		found := len(resps[i].GetResponseRange().GetKvs()) > 0
		switch {
		case r.anc >= 0 && r.dir:
			missing[r.anc] = !found
		case r.anc >= 0:
			file[r.anc] = found
		case r.dir:
			pr.isDir = found
		case found:
			pr.target = resps[i].GetResponseRange().GetKvs()[0]
		}
	}
	anc := Ancestors(p)
	for i := range anc {
		if file[i] {
			pr.fileAncestor = anc[i]
			break
		}
		if missing[i] {
			pr.missingAncestor = anc[i]
			break
		}
	}
	return pr
}

// missing is 104 when a file sits on the path, else 100 naming the first
// path component that does not exist.
func (pr probe) missing(p string) *Error {
	switch {
	case pr.fileAncestor != "":
		return NewError(EcodeNotDir, pr.fileAncestor, pr.rev)
	case pr.missingAncestor != "":
		return NewError(EcodeKeyNotFound, pr.missingAncestor, pr.rev)
	}
	return NewError(EcodeKeyNotFound, p, pr.rev)
}

// setError names why a set or mkdir failed: a file on the path (104), or p
// being a directory (102). A missing parent fails neither: the write makes it.
func (pr probe) setError(p string) *Error {
	if pr.fileAncestor != "" {
		return pr.missing(p)
	}
	return NewError(EcodeNotFile, p, pr.rev)
}

// createError names why a create failed: a file on the path (104), or p
// existing, as a file or a directory (105).
func (pr probe) createError(p string) *Error {
	if pr.fileAncestor != "" {
		return pr.missing(p)
	}
	return NewError(EcodeNodeExist, p, pr.rev)
}

// compareFailed names why a write to an existing file failed (update,
// compare-and-swap, compare-and-delete): p is a directory (102), p is missing
// (100 or 104, as missing), or a comparison failed (101, naming them).
func (pr probe) compareFailed(p, prevValue string, prevIndex uint64) *Error {
	switch {
	case pr.isDir:
		return NewError(EcodeNotFile, p, pr.rev)
	case pr.target == nil:
		return pr.missing(p)
	}
	return NewError(EcodeTestFailed, compareFailCause(prevValue, prevIndex, pr.target), pr.rev)
}

// updateDirError names why a directory's TTL update failed: p is a file
// (104 naming p), or p is missing (as missing).
func (pr probe) updateDirError(p string) *Error {
	if pr.target != nil {
		return NewError(EcodeNotDir, p, pr.rev)
	}
	return pr.missing(p)
}

// label names a write transaction in its errors ("set /a"); it is formatted
// only when one occurs, not for every write.
type label struct{ verb, path string }

func (l label) String() string { return l.verb + " " + l.path }

func (s *V3Store) txn(ctx context.Context, what label, cmp []*pb.Compare, then, els []*pb.RequestOp) (*pb.TxnResponse, error) {
	resp, err := s.kv.Txn(ctx, &pb.TxnRequest{Compare: cmp, Success: then, Failure: els})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s.ack(resp.Header)
	return resp, nil
}

func (s *V3Store) grant(ctx context.Context, ttl *time.Duration) (int64, ttlInfo, error) {
	if ttl == nil {
		return 0, ttlInfo{}, nil
	}
	secs := int64(*ttl / time.Second)
	// v3 leases live at least a second; 3.4's ttl=0 key is gone at the next
	// expiry sweep, which this approximates.
	grant := max(secs, 1)
	r, err := s.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: grant})
	if err != nil {
		return 0, ttlInfo{}, fmt.Errorf("lease grant: %w", err)
	}
	return r.ID, ttlInfo{ttl: secs, exp: s.now().Add(time.Duration(secs) * time.Second).UTC()}, nil
}

// revokeLater drops a lease the failed write did not use.
func (s *V3Store) revokeLater(id int64) {
	if id == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = s.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
	}()
}

func rootReadOnly(ctx context.Context, s *V3Store) (*Event, Meta, error) {
	r, err := s.kv.Range(ctx, &pb.RangeRequest{Key: s.l.Marker("/"), CountOnly: true, Serializable: true})
	if err != nil {
		return nil, Meta{}, fmt.Errorf("reading the store index: %w", err)
	}
	return nil, MetaOf(r.Header), NewError(EcodeRootROnly, "/", uint64(r.Header.Revision))
}

// Get reads a file or a directory listing.
func (s *V3Store) Get(ctx context.Context, p string, o GetOptions) (*Event, Meta, error) {
	s = s.scoped(ctx)
	start, end := s.l.Subtree(p)
	from := start
	if p != "/" && !s.l.onlyBelow(ctx, p) {
		from = s.l.Key(p)
	}
	var kv Ranger
	if !o.Quorum && s.cache != nil {
		if c, ok := s.cache.Acquire(ctx); ok {
			kv = c
		}
	}
	if kv == nil {
		kv = s.kv
		var cancel context.CancelFunc
		ctx, cancel = s.bound(ctx)
		defer cancel()
	}
	read := func(kv Ranger, serializable bool) (*pb.RangeResponse, error) {
		if o.Recursive {
			return kv.Range(ctx, &pb.RangeRequest{Key: from, RangeEnd: end, Serializable: serializable})
		}
		pages := listMemberPages
		if kv != s.kv {
			pages = math.MaxInt // the read cache: pages cost what they read
		}
		return listChildren(ctx, kv, from, start, end, p == "/", serializable, pages)
	}
	r, err := read(kv, !o.Quorum)
	if err == nil && !o.Quorum && r.Header.GetRevision() < s.acked.Load() {
		// Older than a write this shim acknowledged (see acked): the
		// member's linearizable answer, which waits until it applied it.
		if kv != s.kv {
			var cancel context.CancelFunc
			ctx, cancel = s.bound(ctx)
			defer cancel()
		}
		kv = s.kv
		r, err = read(kv, false)
	}
	if err != nil {
		return nil, Meta{}, fmt.Errorf("range %s: %w", p, err)
	}
	m := MetaOf(r.Header)
	var file *mvccpb.KeyValue
	var below []*mvccpb.KeyValue
	for _, kv := range r.Kvs {
		switch {
		case p != "/" && bytes.Equal(kv.Key, from): // from is p's own key
			file = kv
		case bytes.HasPrefix(kv.Key, start):
			below = append(below, kv) // skips siblings such as /a-b between /a and /a/
		}
	}
	if p == "/" {
		n := s.buildDir(ctx, "/", below, o.Recursive)
		n.Key, n.ModifiedIndex, n.CreatedIndex, n.Expiration, n.TTL = "", 0, 0, nil, 0
		return &Event{Action: ActionGet, Node: n}, m, nil
	}
	if len(below) > 0 {
		return &Event{Action: ActionGet, Node: s.buildDir(ctx, p, below, o.Recursive)}, m, nil
	}
	if file != nil {
		var ttls map[int64]ttlInfo
		if file.Lease != 0 {
			ttls = s.leaseTTLs(ctx, map[int64]bool{file.Lease: true})
		}
		return &Event{Action: ActionGet, Node: s.fileNode(file, ttls)}, m, nil
	}
	return nil, m, s.missingAt(ctx, kv, p, r.Header.Revision)
}

// missingAt names a missing key's error at rev, as probe.missing does.
func (s *V3Store) missingAt(ctx context.Context, kv Ranger, p string, rev int64) error {
	for _, a := range Ancestors(p) {
		// Above the caller's grant an ancestor is taken as an existing
		// directory (scope.go).
		if s.l.canRead(s.l.Key(a), nil) {
			r, err := kv.Range(ctx, &pb.RangeRequest{Key: s.l.Key(a), CountOnly: true, Revision: rev, Serializable: true})
			if err != nil {
				return fmt.Errorf("range %s: %w", a, err)
			}
			if r.Count > 0 {
				return NewError(EcodeNotDir, a, uint64(rev))
			}
		}
		start, end := s.l.Subtree(a)
		if !s.l.canRead(start, end) {
			continue
		}
		r, err := kv.Range(ctx, &pb.RangeRequest{Key: start, RangeEnd: end, Limit: 1, KeysOnly: true, Revision: rev, Serializable: true})
		if err != nil {
			return fmt.Errorf("range %s: %w", a, err)
		}
		if len(r.Kvs) == 0 {
			return NewError(EcodeKeyNotFound, a, uint64(rev))
		}
	}
	return NewError(EcodeKeyNotFound, p, uint64(rev))
}

// dirTree is a directory assembled from the v3 keys below it.
type dirTree struct {
	marker  *mvccpb.KeyValue
	files   map[string]*mvccpb.KeyValue
	dirs    map[string]*dirTree
	minCrea int64
}

func newDirTree() *dirTree {
	return &dirTree{files: map[string]*mvccpb.KeyValue{}, dirs: map[string]*dirTree{}}
}

func (t *dirTree) add(rel string, kv *mvccpb.KeyValue) {
	if t.minCrea == 0 || kv.CreateRevision < t.minCrea {
		t.minCrea = kv.CreateRevision
	}
	name, rest, deeper := strings.Cut(rel, "/")
	switch {
	case rel == "":
		t.marker = kv
	case !deeper:
		t.files[name] = kv
	default:
		d := t.dirs[name]
		if d == nil {
			d = newDirTree()
			t.dirs[name] = d
		}
		d.add(rest, kv)
	}
}

func (s *V3Store) buildDir(ctx context.Context, p string, below []*mvccpb.KeyValue, recursive bool) *Node {
	start, _ := s.l.Subtree(p)
	t := newDirTree()
	ids := map[int64]bool{}
	for _, kv := range below {
		rel := kv.Key[len(start):]
		t.add(string(rel), kv)
		// Only the leases of the nodes the answer shows: a listing asks
		// the member for each one's TTL.
		if kv.Lease != 0 && (recursive || shownInListing(rel)) {
			ids[kv.Lease] = true
		}
	}
	ttls := map[int64]ttlInfo{}
	if len(ids) > 0 {
		ttls = s.leaseTTLs(ctx, ids)
	}
	return s.dirNode(p, t, ttls, recursive, true)
}

// dirNode renders a directory; children beyond the first level only when
// recursive. Hidden names (leading "_") are left out of listings.
func (s *V3Store) dirNode(p string, t *dirTree, ttls map[int64]ttlInfo, recursive, withChildren bool) *Node {
	n := &Node{Key: p, Dir: true}
	if t.marker != nil {
		n.ModifiedIndex, n.CreatedIndex = uint64(t.marker.ModRevision), uint64(t.marker.CreateRevision)
		if t.marker.Lease != 0 {
			tt, ok := ttls[t.marker.Lease]
			applyTTL(n, tt, ok)
		}
	} else {
		// A directory implied by keys v3 clients wrote has no marker.
		n.ModifiedIndex, n.CreatedIndex = uint64(t.minCrea), uint64(t.minCrea)
	}
	if !withChildren {
		return n
	}
	base := p
	if base == "/" {
		base = ""
	}
	names := make([]string, 0, len(t.files)+len(t.dirs))
	for name := range t.files {
		if _, isDir := t.dirs[name]; !isDir {
			names = append(names, name)
		}
	}
	for name := range t.dirs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasPrefix(name, "_") || name == recordName {
			continue // hidden, or a directory record (scope.go)
		}
		if d, ok := t.dirs[name]; ok {
			n.Nodes = append(n.Nodes, s.dirNode(base+"/"+name, d, ttls, recursive, recursive))
			continue
		}
		n.Nodes = append(n.Nodes, s.fileNode(t.files[name], ttls))
	}
	return n
}

// CanRead reads at most one key of the watched range as the caller: the
// member checks the range permission without sending the subtree.
func (s *V3Store) CanRead(ctx context.Context, p string, recursive bool) error {
	s = s.scoped(ctx)
	start, end := s.l.Subtree(p)
	key := s.l.Key(p)
	if !recursive {
		end = append(append([]byte(nil), key...), 0)
	}
	switch {
	case p == "/" || (recursive && s.l.onlyBelow(ctx, p)):
		key = start
	case s.l.onlyBelow(ctx, p):
		key, end = start, append(append([]byte(nil), start...), 0) // the directory's marker
	}
	_, err := s.kv.Range(ctx, &pb.RangeRequest{Key: key, RangeEnd: end, CountOnly: true, Serializable: true})
	if err != nil {
		return fmt.Errorf("checking read access to %s: %w", p, err)
	}
	return nil
}
