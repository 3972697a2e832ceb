package v2store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// inOrderLast is the greatest 20-digit name: the in-order names of a
// directory sort between 20 zeros and it.
const inOrderLast = "99999999999999999999"

const (
	// maxStrays bounds the keys with other names that may sort among a
	// directory's in-order names above the chosen one; each costs the
	// transaction a compare.
	maxStrays = 64
	// scanLimit bounds the keys a failed create reads above its name; a
	// directory with more (an imported queue) is passed in steps.
	scanLimit = 512
	// maxHints bounds the directories whose last in-order name a shim
	// remembers.
	maxHints = 4096
)

// inOrder is a store's state for in-order creates: the per-directory
// serialiser and, per directory, the last name this shim gave, so that a
// queue whose names run ahead of the revision (imported from 3.4) costs one
// transaction per create, not two.
type inOrder struct {
	locks dirLocks
	mu    sync.Mutex
	hints map[string]uint64
}

func (q *inOrder) hint(dir string) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.hints[dir]
}

func (q *inOrder) remember(dir string, n uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.hints == nil {
		q.hints = make(map[string]uint64)
	}
	if _, ok := q.hints[dir]; !ok && len(q.hints) >= maxHints {
		for k := range q.hints { // drop any one: a lost hint costs one retry
			delete(q.hints, k)
			break
		}
	}
	q.hints[dir] = n
}

// ErrInOrderDeadline is wrapped by the error of an in-order create whose
// request deadline passed while other writers kept taking the next name.
var ErrInOrderDeadline = errors.New("the request's deadline passed before a free in-order name was won")

// CreateInOrder creates <dir>/<20-digit N> (POST). N is above every in-order
// name already in dir, whoever wrote it (3.4 before an import, v2 import,
// another shim, a v3 client), and at least the revision the create is
// expected to get: equal to the new key's createdIndex whenever nothing else
// writes in between, as in 3.4.
//
// Creates into one directory take turns within this shim (dirLocks), so
// they never race each other. Across shims they can: the transaction
// compares that no key sorts at or above the chosen name among the
// directory's in-order names, and when it fails its else branch reads what
// is there, so the next try names a key above it. Tries continue until one
// wins or the request's deadline passes.
func (s *V3Store) CreateInOrder(ctx context.Context, dir string, o SetOptions) (*Event, Meta, error) {
	s = s.scoped(ctx) // the caller's grant (scope.go)
	ctx, cancel := s.bound(ctx)
	defer cancel()
	unlock, err := s.inOrder.locks.lock(ctx, dir)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = ErrInOrderDeadline
		}
		return nil, Meta{}, fmt.Errorf("create in order %s: waiting for earlier creates in this directory: %w", dir, err)
	}
	defer unlock()
	lease, t, err := s.grant(ctx, o.TTL)
	if err != nil {
		return nil, Meta{}, err
	}
	ev, m, err := s.createInOrder(ctx, dir, o, lease, t)
	if err != nil {
		s.revokeLater(lease)
	}
	return ev, m, err
}

func (s *V3Store) createInOrder(ctx context.Context, dir string, o SetOptions, lease int64, t ttlInfo) (*Event, Meta, error) {
	base := dir
	if base == "/" {
		base = ""
	}
	names := s.l.Key(base + "/")
	end := prefixEnd(s.l.Key(base + "/" + inOrderLast))
	floor := s.inOrder.hint(dir)
	var strays [][]byte // keys among the names that are not names, ascending
	r, err := s.kv.Range(ctx, &pb.RangeRequest{Key: s.l.Marker(dir), CountOnly: true})
	if err != nil {
		return nil, Meta{}, fmt.Errorf("reading the store index: %w", err)
	}
	rev := r.Header.Revision
	informed := false // the name was chosen above everything a complete scan saw
	// fast: the directory's marker exists, so its parents exist and none
	// is a file (a v2 write makes them all): the transaction needs neither
	// a compare nor a marker per parent. It is fewer operations, and the
	// only way for a directory deeper than --max-txn-ops allows per parent.
	fast := dir != "/" && r.Count > 0
	madeDir := false
	if !fast && dir != "/" && deep(dir+"/x") {
		// A new deep directory is made first by the deep write path (an
		// event of its own; 3.4 makes it with the key).
		madeDir = true
		if _, _, err := s.Put(ctx, dir, SetOptions{Dir: true, PrevExist: new(bool)}); err != nil && !isNodeExist(err) {
			return nil, Meta{}, err
		}
		fast = true
	}
	for attempt := 1; ; attempt++ {
		if floor >= maxName {
			return nil, MetaOf(r.Header), NewError(EcodeRaftInternal, fmt.Sprintf("no in-order name is left in %s", dir), uint64(rev))
		}
		n := max(uint64(rev)+1, floor+1)
		name := fmt.Sprintf("%020d", n)
		p := base + "/" + name
		k := s.l.Key(p)
		strays = dropBelow(strays, k)
		var cmp []*pb.Compare
		var then, els []*pb.RequestOp
		if fast {
			cmp = append([]*pb.Compare{markerExists(s.l.Marker(dir))}, nothingAbove(k, end, strays)...)
			then = s.createOps(p, o, lease)
			els = []*pb.RequestOp{opScan(k, end), opGet(s.l.Marker(dir))}
		} else {
			cmp = append(s.l.NoFileAbove(p), nothingAbove(k, end, strays)...)
			then = append(s.l.MarkerOps(p), s.createOps(p, o, lease)...)
			els = append([]*pb.RequestOp{opScan(k, end)}, s.l.probeOps(p)...)
		}
		if rec := s.l.Record(dir); s.l.canRead(rec, nil) {
			// No v2 write in dir since rev: a name another shim gave above
			// this one, and a consumer took away since, would otherwise go
			// unseen (the range compare sees only the keys there now).
			cmp = append(cmp, &pb.Compare{Key: rec, Target: pb.Compare_MOD, Result: pb.Compare_LESS,
				TargetUnion: &pb.Compare_ModRevision{ModRevision: rev + 1}})
		}
		resp, err := s.txn(ctx, label{"create in order", dir}, cmp, then, els)
		if err != nil {
			if attempt > 1 && ctx.Err() != nil {
				return nil, Meta{}, fmt.Errorf("create in order %s: %w (%d tries)", dir, ErrInOrderDeadline, attempt)
			}
			return nil, Meta{}, err
		}
		m := MetaOf(resp.Header)
		if resp.Succeeded {
			s.inOrder.remember(dir, n)
			return &Event{Action: ActionCreate, Node: s.newNode(p, o, resp.Header.Revision, resp.Header.Revision, t)}, m, nil
		}
		if fast && len(resp.Responses[1].GetResponseRange().GetKvs()) == 0 {
			// The marker went away meanwhile (or the directory is a v3
			// client's): the full transaction makes it with its parents,
			// the deep write path a deep one.
			fast, rev = false, resp.Header.Revision
			if deep(p) && !madeDir {
				madeDir = true
				if _, _, err := s.Put(ctx, dir, SetOptions{Dir: true, PrevExist: new(bool)}); err != nil && !isNodeExist(err) {
					return nil, m, err
				}
				fast = true
			}
			continue
		}
		if !fast {
			if pr := s.l.readProbe(p, resp.Responses, resp.Header.Revision); pr.fileAncestor != "" {
				return nil, m, pr.missing(p)
			}
		}
		// Another writer holds this name or a later one: read what is
		// there and try above it.
		stale := rev == resp.Header.Revision
		rev = resp.Header.Revision
		scan := resp.Responses[0].GetResponseRange()
		next, raced := floor, false
		for _, kv := range scan.GetKvs() {
			c := component(kv.Key, len(names))
			if v, ok := parseName(c); ok {
				next, raced = max(next, v), true
				continue
			}
			if len(c) == 20 && isDigits(c) {
				// A 20-digit name above maxName: nothing can go above it.
				next = maxName
				continue
			}
			strays = addStray(strays, kv.Key[:len(names)+len(c)])
		}
		if len(strays) > maxStrays {
			return nil, m, NewError(EcodeRaftInternal, fmt.Sprintf("more than %d keys in %s sort among its in-order names", maxStrays, dir), uint64(rev))
		}
		if stale && !raced {
			next = max(next, n) // nothing moved: make progress anyway
		}
		floor = next
		if informed && raced {
			// The name was above everything there a moment ago: another
			// shim won it. A jittered pause spreads contending shims out.
			// (A failure without a name above n was another write in dir
			// since rev: the next try, at the new revision, goes at once.)
			if err := pause(ctx, attempt); err != nil {
				return nil, m, fmt.Errorf("create in order %s: %w (%d tries)", dir, ErrInOrderDeadline, attempt)
			}
		}
		informed = !scan.GetMore()
	}
}

// maxName is the greatest name that fits an index (uint64); 3.4 never gets
// near it.
const maxName = uint64(1<<64 - 1)

// nothingAbove holds when no key in [from, end) exists other than the strays
// (and what is below each: a stray c excludes [c, c+"0"), which holds no
// 20-digit name unless c is one).
func nothingAbove(from, end []byte, strays [][]byte) []*pb.Compare {
	cmp := make([]*pb.Compare, 0, len(strays)+1)
	start := from
	for _, st := range strays {
		if bytes.Compare(st, start) > 0 {
			cmp = append(cmp, versionIs(start, st, 0))
		}
		start = append(append([]byte(nil), st...), '0')
	}
	if bytes.Compare(start, end) < 0 {
		cmp = append(cmp, versionIs(start, end, 0))
	}
	return cmp
}

// opScan reads the keys in [from, end) in key order, keys only, at most
// scanLimit of them (unsorted ranges honour the limit; a sorted one would
// read the whole range).
func opScan(from, end []byte) *pb.RequestOp {
	o := &rangeOp{r: pb.RangeRequest{Key: from, RangeEnd: end, Limit: scanLimit, KeysOnly: true}}
	o.w.RequestRange, o.op.Request = &o.r, &o.w
	return &o.op
}

// component is the first path component of key after its first skip bytes.
func component(key []byte, skip int) []byte {
	c := key[skip:]
	if i := bytes.IndexByte(c, '/'); i >= 0 {
		c = c[:i]
	}
	return c
}

// parseName reads a 20-digit in-order name.
func parseName(c []byte) (uint64, bool) {
	if len(c) != 20 || !isDigits(c) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(c), 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

func isDigits(c []byte) bool {
	for _, b := range c {
		if b < '0' || b > '9' {
			return false
		}
	}
	return true
}

func addStray(strays [][]byte, k []byte) [][]byte {
	for _, s := range strays {
		if bytes.Equal(s, k) {
			return strays
		}
	}
	strays = append(strays, append([]byte(nil), k...))
	for i := len(strays) - 1; i > 0 && bytes.Compare(strays[i], strays[i-1]) < 0; i-- {
		strays[i], strays[i-1] = strays[i-1], strays[i]
	}
	return strays
}

// dropBelow keeps the strays at or above k.
func dropBelow(strays [][]byte, k []byte) [][]byte {
	i := 0
	for i < len(strays) && bytes.Compare(strays[i], k) < 0 {
		i++
	}
	return strays[i:]
}

// pause waits a jittered while that grows with the tries (at most about
// 40 ms) or until ctx ends.
func pause(ctx context.Context, attempt int) error {
	d := time.Millisecond << min(attempt-2, 5)
	t := time.NewTimer(rand.N(d) + d/4)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// markerExists holds when the marker key exists.
func markerExists(marker []byte) *pb.Compare {
	return &pb.Compare{Key: marker, Target: pb.Compare_VERSION, Result: pb.Compare_GREATER,
		TargetUnion: &pb.Compare_Version{Version: 0}}
}

// isNodeExist reports a 105 (the node exists).
func isNodeExist(err error) bool {
	var ve *Error
	return errors.As(err, &ve) && ve.Code == EcodeNodeExist
}
