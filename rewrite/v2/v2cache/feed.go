package v2cache

import (
	"sync"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
)

// Feed is the follower of the v2 keyspace (v2follow.Follower): its one
// upstream watch keeps the cache current.
type Feed interface {
	// Subscribe makes s receive the follower's batches from now on.
	Subscribe(s v2follow.Subscriber) (cancel func())
	// RequestProgress asks the follower's watch for a progress
	// notification.
	RequestProgress()
}

// notice is one thing the follower told the cache.
type notice struct {
	resumed   bool
	rev       int64 // resumed: every event after it follows
	member    uint64
	batch     *v2follow.Batch
	broken    bool
	compacted int64
	err       error
}

// queue takes the follower's notices on the follower's goroutine and hands
// them to the cache's, which may be busy loading or asking the member's
// version. Batches queued beyond max bytes are dropped: the cache then
// reloads (overflow), and learns how far they went (dropped).
type queue struct {
	max    int64
	signal chan struct{}

	mu       sync.Mutex
	notices  []notice
	bytes    int64
	overflow bool
	dropped  int64 // the highest revision of a dropped batch
}

var _ v2follow.Subscriber = (*queue)(nil)

func newQueue(max int64) *queue { return &queue{max: max, signal: make(chan struct{}, 1)} }

func (q *queue) Resumed(rev int64, member uint64) {
	q.push(notice{resumed: true, rev: rev, member: member}, 0)
}

func (q *queue) Apply(b *v2follow.Batch) {
	var cost int64
	for _, ev := range b.Events {
		cost += kvCost(ev.Kv)
	}
	q.push(notice{batch: b}, cost)
}

func (q *queue) Broken(compacted int64, err error) {
	q.push(notice{broken: true, compacted: compacted, err: err}, 0)
}

func (q *queue) push(n notice, cost int64) {
	q.mu.Lock()
	if n.batch != nil && (q.overflow || q.bytes+cost > q.max) {
		if !q.overflow {
			// Keep what says where the watch is, drop the batches.
			kept := q.notices[:0]
			for _, old := range q.notices {
				if old.batch == nil {
					kept = append(kept, old)
				} else {
					q.dropped = max(q.dropped, old.batch.Revision)
				}
			}
			q.notices, q.bytes, q.overflow = kept, 0, true
		}
		q.dropped = max(q.dropped, n.batch.Revision)
	} else {
		q.notices = append(q.notices, n)
		q.bytes += cost
	}
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take returns what was queued; overflow says batches were dropped, up to
// revision dropped.
func (q *queue) take() (ns []notice, overflow bool, dropped int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ns, overflow, dropped = q.notices, q.overflow, q.dropped
	q.notices, q.bytes, q.overflow, q.dropped = nil, 0, false, 0
	return ns, overflow, dropped
}
