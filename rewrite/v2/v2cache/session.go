package v2cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
)

// state is the cache's own tree, written only by Run's goroutine; readers
// get clones of it.
type state struct {
	kvs   *tree
	base  int64 // loaded at base: events up to it are in kvs already
	rev   int64 // every event up to rev is applied
	bytes int64
	max   int64
}

// kvCost is roughly what one key-value takes in memory.
func kvCost(kv *mvccpb.KeyValue) int64 { return int64(len(kv.Key) + len(kv.Value) + 96) }

func (st *state) put(kv *mvccpb.KeyValue) error {
	if old, ok := st.kvs.ReplaceOrInsert(kv); ok {
		st.bytes -= kvCost(old)
	}
	st.bytes += kvCost(kv)
	if st.max > 0 && st.bytes > st.max {
		return fmt.Errorf("%w (%d bytes)", errTooBig, st.bytes)
	}
	return nil
}

func (st *state) del(key []byte) {
	if old, ok := st.kvs.Delete(&mvccpb.KeyValue{Key: key}); ok {
		st.bytes -= kvCost(old)
	}
}

func (st *state) snapshot() *snapshot {
	return &snapshot{kvs: st.kvs.Clone(), rev: st.rev, bytes: st.bytes}
}

// loadPage is how many keys one range of the initial load reads.
const loadPage = 1000

// load reads the whole v2 keyspace at one revision, a page at a time.
func (c *Cache) load(ctx context.Context) (*state, error) {
	st := &state{kvs: newTree(), max: c.opts.MaxBytes}
	from, end := v2store.Keyspace(c.opts.Prefix)
	rev, err := etcdrpc.RangePages(c.anonymous(ctx), c.kv, &pb.RangeRequest{Key: from, RangeEnd: end, Limit: loadPage, Serializable: true},
		func(kvs []*mvccpb.KeyValue) error {
			for _, kv := range kvs {
				if err := st.put(kv); err != nil {
					return err
				}
			}
			return nil
		})
	if errors.Is(err, errTooBig) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("loading the v2 keyspace: %w", err)
	}
	st.base, st.rev = rev, rev
	return st, nil
}

var errUntrusted = errors.New("member too old for ordered progress notifications")

// loadBackoff is the first pause after a failed load; it doubles up to
// maxBackoff.
const (
	loadBackoff = 200 * time.Millisecond
	maxBackoff  = 30 * time.Second
)

// follow is the cache's view of the follower's watch, kept by Run's
// goroutine: the cache serves while the watch runs (live) on a member it
// trusts and a loaded state follows it.
type follow struct {
	c       *Cache
	st      *state // nil: nothing loaded, or lost to a gap
	live    bool
	member  uint64
	trusted bool
	pos     int64     // the follower has delivered everything up to pos
	trustAt time.Time // when to read the member's version (again)
	loadAt  time.Time // when to load again after a failure
	backoff time.Duration
}

// handle applies the follower's notices in order. Batches dropped by the
// queue (overflow, up to revision dropped) cost the loaded state.
func (f *follow) handle(ns []notice, overflow bool, dropped int64) error {
	for _, n := range ns {
		switch {
		case n.resumed:
			// A watch (re)created, perhaps on another member: read its
			// version before serving behind it.
			f.live, f.pos, f.member, f.trusted, f.trustAt = true, n.rev, n.member, false, time.Time{}
		case n.batch != nil:
			f.pos = max(f.pos, n.batch.Revision)
			if f.st != nil {
				if err := f.st.apply(n.batch); err != nil {
					return err
				}
			}
		case n.broken:
			f.c.m.restarts.Inc()
			f.live, f.trusted = false, false
			if n.compacted > 0 {
				// Events before the compaction are gone: load again.
				f.st, f.pos = nil, max(f.pos, n.compacted-1)
			}
			f.c.log.Info("v2 read cache stops serving until the follower's watch resumes; reads go to the member meanwhile",
				zap.Int64("compacted", n.compacted), zap.Error(n.err))
		}
	}
	if overflow {
		f.c.log.Info("v2 read cache fell behind the follower while busy; it loads the keyspace again")
		f.st, f.pos = nil, max(f.pos, dropped)
	}
	return nil
}

// prepare makes what serving needs, in order: the member's version, then a
// loaded state. Failures are tried again later (wakeAt); only errTooBig is
// returned.
func (f *follow) prepare(ctx context.Context) error {
	if !f.live {
		return nil
	}
	now := time.Now()
	if !f.trusted {
		if now.Before(f.trustAt) {
			return nil
		}
		err := f.c.trust(ctx, f.member)
		if err != nil {
			f.c.m.restarts.Inc()
			f.c.log.Info("v2 read cache not serving behind this member; reads go to the member", zap.Error(err))
			f.trustAt = now.Add(trustRetry)
			return nil
		}
		f.trusted = true
	}
	if f.st != nil || now.Before(f.loadAt) {
		return nil
	}
	st, err := f.c.load(ctx)
	if errors.Is(err, errTooBig) {
		return err
	}
	if err == nil && st.rev < f.pos {
		// A member behind the watch answered: the load would miss
		// events the follower has already passed on.
		err = fmt.Errorf("the keyspace was read at revision %d, behind the watch's %d", st.rev, f.pos)
	}
	if err != nil {
		f.c.log.Info("v2 read cache cannot load the keyspace; reads go to the member", zap.Error(err))
		f.loadAt = now.Add(f.backoff)
		f.backoff = min(2*f.backoff, maxBackoff)
		return nil
	}
	f.st, f.backoff = st, loadBackoff
	return nil
}

// wakeAt is when prepare has something to try again, or zero.
func (f *follow) wakeAt() time.Time {
	switch {
	case !f.live:
		return time.Time{}
	case !f.trusted:
		return f.trustAt
	case f.st == nil:
		return f.loadAt
	}
	return time.Time{}
}

// publish makes reads see the state, or go to the member while the cache
// cannot serve.
func (f *follow) publish() {
	if f.live && f.trusted && f.st != nil {
		f.c.publish(f.st.snapshot())
		return
	}
	if f.c.snap.Load() != nil {
		f.c.publish(nil)
	}
}

// apply moves st to what a batch says: its events after the loaded
// revision, and the revision it proves delivered (not a response header's,
// which may run ahead of the events).
func (st *state) apply(b *v2follow.Batch) error {
	for _, ev := range b.Events {
		if ev.Kv.ModRevision <= st.base {
			continue
		}
		switch ev.Type {
		case mvccpb.PUT:
			if err := st.put(ev.Kv); err != nil {
				return err
			}
		case mvccpb.DELETE:
			st.del(ev.Kv.Key)
		}
	}
	st.rev = max(st.rev, b.Revision)
	return nil
}

// trust checks that the member serving the watch answers progress
// requests in order with its events.
func (c *Cache) trust(ctx context.Context, member uint64) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.BarrierTimeout+5*time.Second)
	defer cancel()
	s, err := etcdrpc.NewMaintenanceClient(c.up).Status(c.anonymous(ctx), &pb.StatusRequest{})
	if err != nil {
		return fmt.Errorf("reading the member's version: %w", err)
	}
	if s.Header.GetMemberId() != member {
		return fmt.Errorf("%w: the version came from member %x, the watch from %x", errUntrusted, s.Header.GetMemberId(), member)
	}
	if !supported(s.Version) {
		return fmt.Errorf("%w: %s (needs %s)", errUntrusted, s.Version, minVersion)
	}
	return nil
}
