package v2watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/metadata"
)

// Direct gives a watch its client's own credentials (ctx carrying the
// client's v3 token), for an upstream watch of the client's own when the hub
// cannot follow the keyspace (auth on, no --user).
type Direct func(ctx context.Context) (context.Context, error)

type directKey struct{}

// WithDirect lets ServeWatch fall back to a watch as the client.
func WithDirect(ctx context.Context, d Direct) context.Context {
	return context.WithValue(ctx, directKey{}, d)
}

// errDirectRefused: the member refused the client's own watch.
var errDirectRefused = errors.New("the member refused the watch")

// serveDirect answers a v2 watch with an upstream v3 watch opened with the
// client's own token: the member itself decides what the client may see, so
// nothing read under another identity is involved. It watches from the
// directory record of the key's parent to the end of the key's subtree, so
// that the actions of writes to the key are known; when the client may not
// read that range, only the key (or its subtree) is watched and actions of
// writes recorded outside it read as set or delete.
func (h *Hub) serveDirect(w http.ResponseWriter, r *http.Request, direct Direct, key string, recursive, stream bool,
	waitIndex uint64, writeHeaders func(http.ResponseWriter, v2store.Meta)) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	cctx, err := direct(ctx)
	if err != nil {
		writeWatchError(w, err)
		return
	}
	l := v2store.NewLayout(h.opts.Prefix)
	sub, subEnd := l.Subtree(key)
	narrow, narrowEnd := l.Key(key), append(append([]byte(nil), l.Key(key)...), 0)
	if recursive {
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
	var ws pb.Watch_WatchClient
	var hd *pb.ResponseHeader
	for _, rng := range ranges {
		ws, hd, err = h.openDirect(cctx, rng[0], rng[1], waitIndex)
		if !errors.Is(err, errDirectRefused) {
			break
		}
	}
	var ve *v2store.Error
	switch {
	case errors.As(err, &ve):
		ve.WriteTo(w)
		return
	case err != nil:
		writeWatchError(w, err)
		return
	}
	m := metaOf(hd)
	if waitIndex == 0 {
		waitIndex = uint64(hd.Revision) + 1
	}
	check, _ := r.Context().Value(checkKey{}).(Check)
	if stream {
		h.m.streams.Inc()
		defer h.m.streams.Dec()
	}
	h.m.waiters.Inc()
	defer h.m.waiters.Dec()
	writeHeaders(w, m)
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		resp, err := ws.Recv()
		if err != nil || resp.Canceled || resp.CompactRevision != 0 {
			return // the client sees the stream end and watches again
		}
		for _, ev := range convertAll(h.opts.Prefix, resp.Events) {
			if ev.index < waitIndex || !ev.matches(key, recursive) {
				continue
			}
			if check != nil {
				if err := check(r.Context(), ev.index); err != nil {
					return
				}
			}
			if err := enc.Encode(ev.ev); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			h.m.events.Inc()
			if !stream {
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
		cerr := cancelError(resp.CancelReason)
		if etcderr.Denied(cerr) {
			return nil, nil, fmt.Errorf("%w: %w", errDirectRefused, cerr)
		}
		return nil, nil, fmt.Errorf("watch canceled by the member: %w", cerr)
	case !resp.Created:
		return nil, nil, errors.New("the member did not confirm the watch")
	}
	return ws, resp.Header, nil
}

// writeWatchError answers a watch that could not start: refused
// credentials or rights as 110, anything else as 300.
func writeWatchError(w http.ResponseWriter, err error) {
	if etcderr.Denied(err) || errors.Is(err, errDirectRefused) {
		v2store.NewError(v2store.EcodeUnauthorized, "Insufficient credentials", 0).WriteTo(w)
		return
	}
	v2store.NewError(v2store.EcodeRaftInternal, err.Error(), 0).WriteTo(w)
}
