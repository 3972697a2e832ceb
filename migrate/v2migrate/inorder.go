package v2migrate

import (
	"context"
	"path"
	"strconv"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// warnInOrderAhead tells the operator when imported in-order keys (20-digit
// names, 3.4's index when they were made) are named above the destination's
// revision, as after importing a store v2 clients wrote much. POSTs into
// their directories still work and sort after them, but their names then
// run ahead of their createdIndex until the revision passes the highest
// imported name (3.4 names a key after its index; docs/v2.md).
func (m *Migrator) warnInOrderAhead(ctx context.Context, root string, tree *Tree) {
	top, dir := highestInOrder(tree.Root)
	if top == 0 || m.o.DryRun {
		return
	}
	r, err := m.kv.Range(ctx, &pb.RangeRequest{Key: m.lay.Marker("/"), CountOnly: true})
	if err != nil || top <= uint64(r.Header.Revision) {
		return
	}
	m.log.Warn("imported in-order keys are named above the destination's revision: new in-order keys (POST) in their directories will be named above them, not after their createdIndex as 3.4 names them, until the revision passes the highest name; queues keep their order",
		zap.String("root", root), zap.String("directory", dir), zap.Uint64("highest-in-order-name", top),
		zap.Int64("destination-revision", r.Header.Revision))
}

// highestInOrder is the greatest 20-digit name below n, and its directory.
func highestInOrder(n *v2store.Node) (uint64, string) {
	if n == nil {
		return 0, ""
	}
	var top uint64
	var dir string
	for _, c := range n.Nodes {
		if name := path.Base(c.Key); len(name) == 20 {
			if v, err := strconv.ParseUint(name, 10, 64); err == nil && v > top {
				top, dir = v, path.Dir(c.Key)
			}
		}
		if c.Dir {
			if v, d := highestInOrder(c); v > top {
				top, dir = v, d
			}
		}
	}
	return top, dir
}
