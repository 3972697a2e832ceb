package v2migrate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/internal/ctxtime"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// FollowStats counts what following applied.
type FollowStats struct {
	Events    int // v2 changes applied
	Resyncs   int // full re-reads after the source's history moved past us
	Conflicts []Conflict
}

func (s FollowStats) String() string {
	return fmt.Sprintf("followed %d changes, %d re-reads, %d conflicts", s.Events, s.Resyncs, len(s.Conflicts))
}

// Follow applies the source's changes below every root from the index after
// each root's import (indexes from Summary.Indexes) until ctx ends. When the
// source no longer holds the next index (error 401, or its watcher was
// cleared) it re-reads the root and converges, deleting what the source no
// longer has. Connection errors are retried; it returns when ctx is done.
func (m *Migrator) Follow(ctx context.Context, indexes map[string]uint64) (FollowStats, error) {
	var (
		mu    sync.Mutex
		stats FollowStats
		wg    sync.WaitGroup
	)
	for _, root := range m.o.Roots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.followRoot(ctx, root, indexes[root], func(f func(*FollowStats)) {
				mu.Lock()
				f(&stats)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	return stats, nil
}

func (m *Migrator) followRoot(ctx context.Context, root string, index uint64, update func(func(*FollowStats))) {
	log := m.log.With(zap.String("root", root))
	next := index + 1
	delay := backoff{}
	for ctx.Err() == nil {
		ev, err := m.src.Wait(ctx, root, next)
		if ctx.Err() != nil {
			return
		}
		if isIndexCleared(err) {
			log.Info("the source no longer holds the next change: re-reading the tree", zap.Uint64("wait-index", next), zap.Error(err))
			s, idx, err := m.importRoot(ctx, root, true)
			if err != nil && !errors.Is(err, ErrConflicts) && len(s.Conflicts) == 0 {
				log.Warn("re-reading the source", zap.Error(err))
				delay.sleep(ctx)
				continue
			}
			for _, c := range s.Conflicts {
				log.Error(c.String())
			}
			update(func(f *FollowStats) { f.Resyncs++; f.Conflicts = append(f.Conflicts, s.Conflicts...) })
			log.Info("re-synced", zap.String("summary", s.String()), zap.Uint64("index", idx))
			next = idx + 1
			delay.reset()
			continue
		}
		if err != nil {
			log.Warn("watching the source", zap.Uint64("wait-index", next), zap.Error(err))
			delay.sleep(ctx)
			continue
		}
		c, err := m.apply(ctx, ev)
		if err != nil {
			log.Warn("applying a change to the destination", zap.String("key", ev.Node.Key), zap.Error(err))
			delay.sleep(ctx)
			continue // the same index again
		}
		delay.reset()
		if c != nil {
			log.Error(c.String(), zap.String("action", ev.Action))
		}
		log.Debug("applied", zap.String("action", ev.Action), zap.String("key", ev.Node.Key), zap.Uint64("index", ev.Node.ModifiedIndex))
		update(func(f *FollowStats) {
			f.Events++
			if c != nil {
				f.Conflicts = append(f.Conflicts, *c)
			}
		})
		if ev.Node.ModifiedIndex >= next {
			next = ev.Node.ModifiedIndex + 1
		} else {
			next++
		}
	}
}

// apply writes one v2 change in one transaction, recording its action for
// the destination's v2 watchers (an expiry records none, so the shim's
// watchers report it as an expire).
func (m *Migrator) apply(ctx context.Context, ev *v2store.Event) (*Conflict, error) {
	n := ev.Node
	p := CleanRoot(n.Key)
	if p == "/" {
		return nil, nil
	}
	var cmp []*pb.Compare
	var ops []*pb.RequestOp
	var lease int64
	switch ev.Action {
	case v2store.ActionSet, v2store.ActionCreate, v2store.ActionUpdate, v2store.ActionCompareAndSwap:
		if n.TTL > 0 || n.Expiration != nil {
			r, err := m.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: max(n.TTL, 1)})
			if err != nil {
				return nil, fmt.Errorf("granting a lease for %s: %w", p, err)
			}
			lease = r.ID
		}
		cmp = m.lay.NoFileAbove(p)
		ops = m.lay.MarkerOps(p)
		if n.Dir {
			if ev.PrevNode != nil && !ev.PrevNode.Dir {
				ops = append(ops, opDelete(m.lay.Key(p), nil)) // a directory replacing a file
			} else {
				cmp = append(cmp, m.lay.NotFile(p))
			}
			ops = append(ops, opPut(m.lay.Marker(p), "", lease))
		} else {
			value := ""
			if n.Value != nil {
				value = *n.Value
			}
			cmp = append(cmp, m.lay.NotDir(p))
			ops = append(ops, opPut(m.lay.Key(p), value, lease))
		}
		ops = append(ops, m.lay.ActionOp(p, ev.Action))
	case v2store.ActionDelete, v2store.ActionCompareAndDelete, v2store.ActionExpire:
		if n.Dir {
			s, e := m.lay.Subtree(p)
			ops = append(ops, opDelete(s, e))
		} else {
			ops = append(ops, opDelete(m.lay.Key(p), nil))
		}
		if ev.Action != v2store.ActionExpire {
			ops = append(ops, m.lay.ActionOp(p, ev.Action))
		}
	default:
		return nil, nil
	}
	r, err := m.kv.Txn(ctx, &pb.TxnRequest{Compare: cmp, Success: ops})
	if err != nil {
		m.revoke([]int64{lease})
		return nil, fmt.Errorf("%s %s: %w", ev.Action, p, err)
	}
	if !r.Succeeded {
		m.revoke([]int64{lease})
		c := explain(Entry{Path: p, Dir: n.Dir})
		c.Reason += " (or a file above it); change " + ev.Action + " not applied"
		return &c, nil
	}
	return nil, nil
}

// backoff waits longer after each consecutive failure, up to 5 s.
type backoff struct{ d time.Duration }

func (b *backoff) sleep(ctx context.Context) {
	if b.d == 0 {
		b.d = 100 * time.Millisecond
	} else {
		b.d = min(2*b.d, 5*time.Second)
	}
	ctxtime.Sleep(ctx, b.d)
}

func (b *backoff) reset() { b.d = 0 }
