package v2watch

import (
	"sort"
	"strings"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// event is one v2 event with its index (the v3 revision).
type event struct {
	index uint64
	key   string // the node's v2 path
	dir   bool
	ev    *v2store.Event
}

// convertAll turns a watch response's events into v2 events, one per
// revision.
func convertAll(prefix string, evs []*mvccpb.Event) []*event {
	var out []*event
	for i := 0; i < len(evs); {
		j := i
		for j < len(evs) && evs[j].Kv.ModRevision == evs[i].Kv.ModRevision {
			j++
		}
		if ev := convert(prefix, evs[i].Kv.ModRevision, evs[i:j]); ev != nil {
			out = append(out, ev)
		}
		i = j
	}
	return out
}

// convert turns the v3 events of one revision into the v2 event, or nil for
// revisions that are not v2-visible (a refresh, a directory record alone).
func convert(prefix string, rev int64, evs []*mvccpb.Event) *event {
	action := ""
	var puts, dels []*mvccpb.Event
	for _, e := range evs {
		if v2store.IsRecord(e.Kv.Key) {
			// The directory record of the write (its deletion goes with
			// a directory's and is no event of its own).
			if e.Type == mvccpb.PUT {
				action = string(e.Kv.Value)
			}
			continue
		}
		if e.Type == mvccpb.PUT {
			puts = append(puts, e)
		} else {
			dels = append(dels, e)
		}
	}
	if action == v2store.ActionRefresh || action == v2store.ActionExpireSubtree || (len(puts) == 0 && len(dels) == 0) {
		return nil
	}
	path := func(k []byte) (string, bool) {
		p := strings.TrimPrefix(string(k), prefix)
		if strings.HasSuffix(p, "/") && p != "/" {
			return strings.TrimSuffix(p, "/"), true
		}
		return p, false
	}
	out := &event{index: uint64(rev)}
	if len(puts) > 0 {
		// The written node is the deepest non-marker key, else the deepest
		// marker (markers of parents are created alongside).
		sort.Slice(puts, func(i, j int) bool { return rank(puts[i].Kv.Key) > rank(puts[j].Kv.Key) })
		e := puts[0]
		p, isDir := path(e.Kv.Key)
		if action == "" {
			action = v2store.ActionSet
		}
		node := &v2store.Node{Key: p, ModifiedIndex: uint64(rev), CreatedIndex: uint64(e.Kv.CreateRevision)}
		if isDir {
			node.Dir = true
		} else {
			v := string(e.Kv.Value)
			node.Value = &v
		}
		out.key, out.dir = p, isDir
		out.ev = &v2store.Event{Action: action, Node: node}
		prev := e.PrevKv
		if prev == nil && len(dels) > 0 && isDir {
			prev = dels[0].PrevKv // a directory replacing a file
		}
		out.ev.PrevNode = prevNode(prefix, prev)
		return out
	}
	// Deletes: the node is the shallowest deleted key (a recursive delete
	// removes a directory's marker and everything below it).
	sort.Slice(dels, func(i, j int) bool { return len(dels[i].Kv.Key) < len(dels[j].Kv.Key) })
	e := dels[0]
	p, isDir := path(e.Kv.Key)
	if !isDir && len(dels) > 1 {
		isDir = true // an implicit directory's keys deleted together
	}
	if action == "" {
		action = v2store.ActionDelete
		if e.PrevKv != nil && e.PrevKv.Lease != 0 {
			action = v2store.ActionExpire // no v2 write recorded it: the lease ran out
		}
	}
	node := &v2store.Node{Key: p, Dir: isDir, ModifiedIndex: uint64(rev)}
	if e.PrevKv != nil {
		node.CreatedIndex = uint64(e.PrevKv.CreateRevision)
	}
	out.key, out.dir = p, isDir
	out.ev = &v2store.Event{Action: action, Node: node, PrevNode: prevNode(prefix, e.PrevKv)}
	return out
}

// rank orders keys by depth, files before markers at equal depth.
func rank(k []byte) int {
	r := 2 * strings.Count(string(k), "/")
	if strings.HasSuffix(string(k), "/") {
		r -= 3
	}
	return r
}

func prevNode(prefix string, kv *mvccpb.KeyValue) *v2store.Node {
	if kv == nil {
		return nil
	}
	p := strings.TrimPrefix(string(kv.Key), prefix)
	n := &v2store.Node{Key: p, ModifiedIndex: uint64(kv.ModRevision), CreatedIndex: uint64(kv.CreateRevision)}
	if strings.HasSuffix(p, "/") && p != "/" {
		n.Key, n.Dir = strings.TrimSuffix(p, "/"), true
		return n
	}
	v := string(kv.Value)
	n.Value = &v
	return n
}

// matches reports whether a watcher on key (recursive or not) sees e.
func (e *event) matches(key string, recursive bool) bool {
	if e.key == key {
		return true
	}
	// Deleting or expiring a directory ends everything below it.
	if (e.ev.Action == v2store.ActionDelete || e.ev.Action == v2store.ActionExpire) && e.dir &&
		strings.HasPrefix(key, e.key+"/") {
		return true
	}
	if !recursive {
		return false
	}
	base := key
	if base == "/" {
		base = ""
	}
	if !strings.HasPrefix(e.key, base+"/") {
		return false
	}
	// Hidden components below the watched key are not reported.
	for _, c := range strings.Split(strings.TrimPrefix(e.key, base+"/"), "/") {
		if strings.HasPrefix(c, "_") {
			return false
		}
	}
	return true
}
