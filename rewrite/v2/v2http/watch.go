package v2http

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"go.uber.org/zap"
)

// slowWatchHeaders is when a long poll's headers are logged as late.
const slowWatchHeaders = time.Second

// serveWatch answers a wait=true request as 3.4 does: the headers at once
// (X-Etcd-Index is the store's at registration), then one JSON line per
// event, the first only for a long poll, every one for stream=true, until
// the watch ends or the client goes.
//
// The client must be allowed to read the key itself before it waits, as
// 3.4 checks; and since the hub's events are read under the shim's
// identity, the member is asked again, as the client, before each event is
// delivered (rights change). A failed check ends the watch without the
// event; the client's next request is refused.
func (k *Keys) serveWatch(w http.ResponseWriter, r *http.Request, rq *request) {
	if k.opts.Watches == nil {
		k.writeError(w, errors.New("watch is not available"))
		return
	}
	start := time.Now()
	user, err := k.canReadAs(r, rq)
	k.observe(r, user)
	if err != nil {
		k.writeError(w, err)
		return
	}
	// A watch that must run as the client (auth on, no --user) gets the
	// client's credentials from ctx.
	ctx := r.Context()
	if k.opts.Credentials != nil {
		if ctx, _, err = k.opts.Credentials.Context(ctx, r); err != nil {
			k.writeError(w, err)
			return
		}
	}
	checked := time.Now()
	wt, m, err := k.opts.Watches.Watch(ctx, rq.key, v2store.WatchOptions{Recursive: rq.recursive, Stream: rq.stream, WaitIndex: rq.waitIndex})
	k.headers.ClusterID(w, m.ClusterID)
	if err != nil {
		k.writeError(w, err)
		return
	}
	defer wt.Stop()
	check := k.deliveryCheck(r, rq)
	k.writeHeaders(w, m)
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush() // headers at once, as 3.4
	}
	if took := time.Since(start); took > slowWatchHeaders {
		// Clients give a long poll's headers little time (Patroni 2.5 s,
		// and counts a miss as a failed request): say which step was slow.
		k.opts.Logger.Warn("v2 watch headers answered late", zap.String("key", rq.key), zap.Duration("took", took),
			zap.Duration("read-access-check", checked.Sub(start)), zap.Duration("registration", time.Since(checked)))
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case c, ok := <-wt.Changes():
			if !ok {
				return // the client sees the stream end and watches again
			}
			if err := check(r.Context(), c.Index); err != nil {
				k.opts.Logger.Debug("v2 watch closed: the member no longer lets the client read what it watches",
					zap.String("key", rq.key), zap.Error(err))
				return
			}
			if err := enc.Encode(c.Event); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			if !rq.stream {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}
