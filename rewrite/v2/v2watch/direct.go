package v2watch

import (
	"context"
	"errors"
	"fmt"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/metadata"
)

// errDirectRefused: the member refused the client's own watch.
var errDirectRefused = errors.New("the member refused the watch")

// direct serves a v2 watch with an upstream v3 watch opened with the
// client's own credentials (ctx's): the member itself decides what the
// client may see, so nothing read under another identity is involved. It
// watches from the directory record of the key's parent to the end of the
// key's subtree, so that the actions of writes to the key are known; when
// the client may not read that range, only the key (or its subtree) is
// watched and actions of writes recorded outside it read as set or delete.
// Such a watch is one upstream watch per client by design: it carries the
// client's credentials, which the follower's shared watch cannot.
func (h *Hub) direct(ctx context.Context, key string, o v2store.WatchOptions) (v2store.Watcher, v2store.Meta, error) {
	if h.up == nil {
		// Nothing to watch as the client with: say why the shared watch
		// cannot serve (never the client's refusal, so not wrapped).
		if err := h.feed.Unavailable(); err != nil {
			return nil, v2store.Meta{}, errors.New(err.Error())
		}
		return nil, v2store.Meta{}, errNotReady
	}
	l := v2store.NewLayout(h.opts.Prefix)
	sub, subEnd := l.Subtree(key)
	narrow, narrowEnd := l.Key(key), append(append([]byte(nil), l.Key(key)...), 0)
	if o.Recursive {
		narrowEnd = subEnd
	}
	if key == "/" {
		narrow = sub
	}
	wide := l.Record(v2store.ParentDir(key))
	ranges := [][2][]byte{{wide, subEnd}, {narrow, narrowEnd}}
	if key == "/" {
		ranges = ranges[1:]
	}
	ctx, cancel := context.WithCancel(ctx)
	var ws pb.Watch_WatchClient
	var hd *pb.ResponseHeader
	var err error
	for _, rng := range ranges {
		ws, hd, err = h.openDirect(ctx, rng[0], rng[1], o.WaitIndex)
		if !errors.Is(err, errDirectRefused) {
			break
		}
	}
	if err != nil {
		cancel()
		return nil, v2store.Meta{}, err
	}
	since := o.WaitIndex
	if since == 0 {
		since = uint64(hd.Revision) + 1
	}
	d := &directWatch{h: h, cancel: cancel, stream: o.Stream, ch: make(chan *v2store.Change), done: make(chan struct{})}
	if o.Stream {
		h.m.streams.Inc()
	}
	h.m.waiters.Inc()
	go d.run(ctx, ws, l, key, o.Recursive, since)
	return d, v2store.MetaOf(hd), nil
}

// directWatch is a watch of the client's own.
type directWatch struct {
	h      *Hub
	cancel context.CancelFunc
	stream bool
	ch     chan *v2store.Change
	done   chan struct{}
}

func (d *directWatch) Changes() <-chan *v2store.Change { return d.ch }

func (d *directWatch) Stop() {
	d.cancel()
	<-d.done
}

// run passes the upstream watch's v2 events on until the stream ends, the
// first event of a long poll is taken, or the watch is stopped.
func (d *directWatch) run(ctx context.Context, ws pb.Watch_WatchClient, l v2store.Layout, key string, recursive bool, since uint64) {
	defer close(d.done)
	defer d.h.m.waiters.Dec()
	if d.stream {
		defer d.h.m.streams.Dec()
	}
	defer close(d.ch) // the client sees the stream end and watches again
	for {
		resp, err := ws.Recv()
		if err != nil || resp.Canceled || resp.CompactRevision != 0 {
			return
		}
		for _, c := range l.Changes(resp.Events) {
			if c.Index < since || !c.Matches(key, recursive) {
				continue
			}
			select {
			case d.ch <- c:
			case <-ctx.Done():
				return
			}
			d.h.m.events.Inc()
			if !d.stream {
				<-ctx.Done() // nothing more for a long poll: wait for Stop
				return
			}
		}
	}
}

// openDirect creates the client's watch of [key, end) from waitIndex (the
// next revision when 0) and returns the member's header at creation.
func (h *Hub) openDirect(ctx context.Context, key, end []byte, waitIndex uint64) (pb.Watch_WatchClient, *pb.ResponseHeader, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "hasleader", "true")
	ws, err := etcdrpc.NewWatchClient(h.up.ClientConn()).Watch(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the watch: %w", err)
	}
	if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: key, RangeEnd: end, StartRevision: int64(waitIndex), PrevKv: true}}}); err != nil {
		return nil, nil, fmt.Errorf("creating the watch: %w", err)
	}
	resp, err := ws.Recv()
	if err != nil {
		return nil, nil, fmt.Errorf("creating the watch: %w", err)
	}
	switch {
	case resp.CompactRevision != 0:
		return nil, nil, v2store.NewError(v2store.EcodeEventIndexCleared,
			fmt.Sprintf("the requested history has been cleared [%d/%d]", resp.CompactRevision, waitIndex), uint64(resp.Header.GetRevision()))
	case resp.Canceled:
		cerr := etcderr.WatchCanceled(resp.CancelReason)
		if etcderr.Denied(cerr) {
			return nil, nil, fmt.Errorf("%w: %w", errDirectRefused, cerr)
		}
		return nil, nil, fmt.Errorf("watch canceled by the member: %w", cerr)
	case !resp.Created:
		return nil, nil, errors.New("the member did not confirm the watch")
	}
	return ws, resp.Header, nil
}
