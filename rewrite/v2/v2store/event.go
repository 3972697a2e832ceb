package v2store

import (
	"sort"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Change is a v2 event as a watch delivers it: the event, the revision that
// made it (its v2 index) and the node it happened to.
type Change struct {
	Index uint64
	Path  string // the node's v2 path
	Dir   bool
	Event *Event
}

// Changes turns v3 watch events under the layout's prefix, in revision
// order, into v2 changes: one per revision a v2 watcher sees. It is the one
// place v3 writes become v2 events; the follower of the keyspace and the
// watches run as their client both use it.
func (l Layout) Changes(evs []*mvccpb.Event) []*Change {
	var out []*Change
	for i := 0; i < len(evs); {
		j := i
		for j < len(evs) && evs[j].Kv.ModRevision == evs[i].Kv.ModRevision {
			j++
		}
		if c := l.change(evs[i].Kv.ModRevision, evs[i:j]); c != nil {
			out = append(out, c)
		}
		i = j
	}
	return out
}

// change turns the v3 events of one revision into its v2 change, or nil for
// a revision no v2 watcher sees (a refresh, the removal of an expired
// directory's contents, a directory record alone).
//
// The action comes from the directory record the v2 write put in its
// transaction (IsRecord); without one the revision is a v3 client's write
// (set, delete) or, for a deleted key that had a lease, an expiry.
func (l Layout) change(rev int64, evs []*mvccpb.Event) *Change {
	action := ""
	var puts, dels []*mvccpb.Event
	for _, e := range evs {
		if IsRecord(e.Kv.Key) {
			// The directory record of the write (its deletion goes with
			// a directory's and is no event of its own).
			if e.Type == mvccpb.PUT {
				action = actionOf(e.Kv.Value)
			}
			continue
		}
		if e.Type == mvccpb.PUT {
			puts = append(puts, e)
		} else {
			dels = append(dels, e)
		}
	}
	if action == ActionRefresh || action == ActionExpireSubtree || (len(puts) == 0 && len(dels) == 0) {
		return nil
	}
	if len(puts) > 0 {
		// The written node is the deepest non-marker key, else the deepest
		// marker (markers of parents are created alongside); among equals, the
		// first written.
		if len(puts) > 1 { // a v2 set's own key alone needs no sort (which allocates)
			sort.SliceStable(puts, func(i, j int) bool { return rank(puts[i].Kv.Key) > rank(puts[j].Kv.Key) })
		}
		e := puts[0]
		if action == "" {
			action = ActionSet
		}
		node := l.node(e.Kv)
		prev := e.PrevKv
		if prev == nil && len(dels) > 0 && node.Dir {
			prev = dels[0].PrevKv // a directory replacing a file
		}
		return newChange(uint64(rev), node.Key, node.Dir, Event{Action: action, Node: node, PrevNode: l.prevNode(prev)})
	}
	// Deletes: the node is the shallowest deleted key (a recursive delete
	// removes a directory's marker and everything below it); among equals,
	// the first deleted.
	if len(dels) > 1 {
		sort.SliceStable(dels, func(i, j int) bool { return len(dels[i].Kv.Key) < len(dels[j].Kv.Key) })
	}
	e := dels[0]
	p, isDir := l.decode(e.Kv.Key)
	if !isDir && len(dels) > 1 {
		isDir = true // an implicit directory's keys deleted together
	}
	if action == "" {
		action = ActionDelete
		if e.PrevKv != nil && e.PrevKv.Lease != 0 {
			action = ActionExpire // no v2 write recorded it: the lease ran out
		}
	}
	node := &Node{Key: p, Dir: isDir, ModifiedIndex: uint64(rev)}
	if e.PrevKv != nil {
		node.CreatedIndex = uint64(e.PrevKv.CreateRevision)
	}
	return newChange(uint64(rev), p, isDir, Event{Action: action, Node: node, PrevNode: l.prevNode(e.PrevKv)})
}

// newChange allocates a change and its event together (they live as long
// as each other, in the watch history).
func newChange(index uint64, p string, dir bool, ev Event) *Change {
	ce := &struct {
		c Change
		e Event
	}{c: Change{Index: index, Path: p, Dir: dir}, e: ev}
	ce.c.Event = &ce.e
	return &ce.c
}

// rank orders keys by depth, files before markers at equal depth.
func rank(k []byte) int {
	r := 2 * strings.Count(string(k), "/")
	if strings.HasSuffix(string(k), "/") {
		r -= 3
	}
	return r
}

// node is the v2 node a v3 key-value holds: a file with its value, or for a
// marker the directory alone. Neither carries a TTL: that needs the lease's
// time to live, which only the store asks for.
func (l Layout) node(kv *mvccpb.KeyValue) *Node {
	k := kv.Key
	if len(k) >= len(l.prefix) && string(k[:len(l.prefix)]) == l.prefix {
		k = k[len(l.prefix):] // as v2Path trims it
	}
	if len(k) > 0 && k[len(k)-1] == '/' {
		p, _ := l.decode(kv.Key)
		return &Node{Key: p, Dir: true, ModifiedIndex: uint64(kv.ModRevision), CreatedIndex: uint64(kv.CreateRevision)}
	}
	// A file: its path and value in one string, its node and the value's
	// pointer in one object (every GET and every write's event makes some).
	var b strings.Builder
	b.Grow(len(k) + len(kv.Value))
	b.Write(k)
	b.Write(kv.Value)
	s := b.String()
	return newFileNode(s[:len(k)], s[len(k):], uint64(kv.ModRevision), uint64(kv.CreateRevision))
}

// valued is a file's node with its value, allocated together.
type valued struct {
	n Node
	v string
}

// newFileNode is a file's node holding value.
func newFileNode(p, value string, modified, created uint64) *Node {
	vn := &valued{v: value}
	vn.n = Node{Key: p, Value: &vn.v, ModifiedIndex: modified, CreatedIndex: created}
	return &vn.n
}

// prevNode is the node as it was before a write, or nil for none.
func (l Layout) prevNode(kv *mvccpb.KeyValue) *Node {
	if kv == nil {
		return nil
	}
	return l.node(kv)
}

// Matches reports whether a watcher of key (and below it when recursive)
// sees c, as 3.4's watcher hub decides.
func (c *Change) Matches(key string, recursive bool) bool {
	if c.Path == key {
		return true
	}
	// Deleting or expiring a directory ends everything below it.
	if (c.Event.Action == ActionDelete || c.Event.Action == ActionExpire) && c.Dir &&
		strings.HasPrefix(key, c.Path+"/") {
		return true
	}
	if !recursive {
		return false
	}
	base := key
	if base == "/" {
		base = ""
	}
	if !strings.HasPrefix(c.Path, base+"/") {
		return false
	}
	// Hidden components below the watched key are not reported.
	for _, s := range strings.Split(strings.TrimPrefix(c.Path, base+"/"), "/") {
		if strings.HasPrefix(s, "_") {
			return false
		}
	}
	return true
}

// MetaOf is what a member's response header says for a v2 answer's
// headers.
func MetaOf(h *pb.ResponseHeader) Meta {
	if h == nil {
		return Meta{}
	}
	// v3 does not expose the raft commit index per response; the revision
	// is the monotonic cluster-wide counter clients can use the same way.
	return Meta{EtcdIndex: uint64(h.Revision), RaftIndex: uint64(h.Revision), RaftTerm: h.RaftTerm, ClusterID: h.ClusterId}
}
