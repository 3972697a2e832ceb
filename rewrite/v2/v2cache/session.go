package v2cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// state is the cache's own tree, written only by Run's goroutine; readers
// get clones of it.
type state struct {
	kvs   *tree
	rev   int64 // every event up to rev is applied
	bytes int64
	max   int64
}

func (st *state) revOrZero() int64 {
	if st == nil {
		return 0
	}
	return st.rev
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
	st.rev = rev
	return st, nil
}

var (
	errCompacted = errors.New("the cache's revision was compacted")
	errUntrusted = errors.New("member too old for ordered progress notifications")
)

// follow applies the watch from st.rev on, publishing a snapshot after
// every response, until the stream ends. served says whether it got as far
// as serving reads.
func (c *Cache) follow(ctx context.Context, st *state) (served bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Require a leader, as clientv3 does, so a partitioned member's watch
	// fails instead of going silent.
	ctx = metadata.AppendToOutgoingContext(c.anonymous(ctx), "hasleader", "true")
	ws, err := etcdrpc.NewWatchClient(c.up).Watch(ctx)
	if err != nil {
		return false, fmt.Errorf("opening the watch: %w", err)
	}
	key, end := v2store.Keyspace(c.opts.Prefix)
	// Start at st.rev, not after it: a watch starting after the member's
	// current revision gets no progress notification until the next write.
	// The events at st.rev are already applied; applying them again changes
	// nothing.
	if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: key, RangeEnd: end, StartRevision: st.rev}}}); err != nil {
		return false, fmt.Errorf("creating the watch: %w", err)
	}
	created, err := ws.Recv()
	if err != nil {
		return false, fmt.Errorf("creating the watch: %w", err)
	}
	if err := c.check(created); err != nil {
		return false, err
	}
	if err := c.trust(ctx, created.Header.GetMemberId()); err != nil {
		return false, err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.progress:
				if ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}) != nil {
					return
				}
			}
		}
	}()
	c.publish(st.snapshot())
	for {
		resp, err := ws.Recv()
		if err != nil {
			return true, fmt.Errorf("watch stream: %w", err)
		}
		if err := c.check(resp); err != nil {
			return true, err
		}
		if err := c.apply(st, resp); err != nil {
			return true, err
		}
		c.publish(st.snapshot())
	}
}

// check turns a compacted or cancelled watch into an error.
func (c *Cache) check(resp *pb.WatchResponse) error {
	switch {
	case resp.CompactRevision != 0:
		return fmt.Errorf("%w (oldest revision %d)", errCompacted, resp.CompactRevision)
	case resp.Canceled:
		return errors.New("watch cancelled by the member: " + resp.CancelReason)
	}
	return nil
}

// apply moves st to what resp says: its events, and the revision it
// proves delivered (not its header's, which may run ahead of the events).
func (c *Cache) apply(st *state, resp *pb.WatchResponse) error {
	for _, ev := range resp.Events {
		switch ev.Type {
		case mvccpb.PUT:
			if err := st.put(ev.Kv); err != nil {
				return err
			}
		case mvccpb.DELETE:
			st.del(ev.Kv.Key)
		}
	}
	st.rev = max(st.rev, etcdrpc.DeliveredRevision(resp))
	return nil
}

// trust checks that the member serving the watch answers progress
// requests in order with its events.
func (c *Cache) trust(ctx context.Context, member uint64) error {
	s, err := etcdrpc.NewMaintenanceClient(c.up).Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return fmt.Errorf("reading the member's version: %w", err)
	}
	if s.Header.GetMemberId() != member {
		return fmt.Errorf("%w: the version came from member %x, the watch from %x", errUntrusted, s.Header.GetMemberId(), member)
	}
	if !supported(s.Version) {
		c.log.Info("v2 read cache not used with this member", zap.String("version", s.Version), zap.String("needs", minVersion.String()))
		return fmt.Errorf("%w: %s", errUntrusted, s.Version)
	}
	return nil
}
