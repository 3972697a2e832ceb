package v2follow

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/internal/ctxtime"
	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Upstream is the proxy's connection picker.
type Upstream interface {
	ClientConn() grpc.ClientConnInterface
}

// Identity gives the follower's calls the shim's own credentials (--user).
type Identity interface {
	Context(ctx context.Context) (context.Context, error)
	// Renew replaces the token used carried when err says the member no
	// longer accepts it.
	Renew(ctx, used context.Context, err error)
}

// Options configure a Follower.
type Options struct {
	// Prefix is --v2-prefix: the follower watches the v3 range under
	// Prefix+"/".
	Prefix string
	// Identity is the shim's own identity for the watch, the store index
	// and the removal of expired directories' contents; nil: none (the
	// follower then works only while auth is off).
	Identity   Identity
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// Batch is one watch response, decoded once for every subscriber.
// Subscribers share it and must not modify it.
type Batch struct {
	// Events are the v3 events as the member sent them.
	Events []*mvccpb.Event
	// Changes are the v2 events they make, one per revision a v2 watcher
	// sees.
	Changes []*v2store.Change
	// Revision is the revision up to which the response proves every
	// event delivered (etcdrpc.DeliveredRevision), 0 when it proves
	// nothing. A progress notification is a Batch with no events.
	Revision int64
}

// Subscriber receives what the follower sees, in order. Its methods run on
// the follower's goroutine while it holds its lock: they must return
// quickly, and must not call the Follower.
type Subscriber interface {
	// Resumed says that a watch runs on member: every event after rev
	// follows.
	Resumed(rev int64, member uint64)
	// Apply hands over one watch response.
	Apply(b *Batch)
	// Broken says that the watch ended with err. compacted > 0 when the
	// events from the last one delivered to compacted-1 are gone (the
	// member compacted them): the next Resumed is at compacted-1.
	Broken(compacted int64, err error)
}

// ErrNeedsIdentity is why the follower cannot follow the keyspace while
// auth is on and the shim has no identity: it names what to configure.
var ErrNeedsIdentity = errors.New("v2 watches need the shim's own v3 identity while auth is on: set --user (and --password or ETCDSHIM_PASSWORD) to a v3 user with read permission on the v2 keyspace (the v3 prefix <--v2-prefix>/), see docs/v2.md")

// Follower keeps one upstream watch on the v2 keyspace and fans it out.
type Follower struct {
	opts     Options
	up       Upstream
	layout   v2store.Layout
	log      *zap.Logger
	restarts prometheus.Counter
	progress chan struct{} // asks the running watch for a progress notification
	// pause waits between watches (ctxtime.Sleep; tests record it).
	pause func(ctx context.Context, d time.Duration) bool

	mu      sync.Mutex // held while subscribers are told anything
	subs    map[*subscription]struct{}
	current int64 // every event up to current has been delivered
	live    bool  // a watch runs and was Resumed
	member  uint64

	authMu sync.Mutex
	// authErr is why the member refuses the follower's identity (auth on,
	// no or too small an identity); nil otherwise.
	authErr error
}

type subscription struct{ s Subscriber }

// New returns a follower; Run follows.
func New(opts Options, up Upstream) *Follower {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	restarts := prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_v2_watch_upstream_restarts_total",
		Help: "Times the upstream v3 watch of the v2 keyspace was re-established."})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(restarts)
	}
	return &Follower{opts: opts, up: up, layout: v2store.NewLayout(opts.Prefix), log: opts.Logger, restarts: restarts,
		progress: make(chan struct{}, 1), pause: ctxtime.Sleep, subs: map[*subscription]struct{}{}}
}

// Subscribe makes s receive what the follower sees from now on; if a watch
// runs, s is told Resumed at once. cancel ends the subscription.
func (f *Follower) Subscribe(s Subscriber) (cancel func()) {
	sub := &subscription{s: s}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[sub] = struct{}{}
	if f.live {
		s.Resumed(f.current, f.member)
	}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, sub)
	}
}

// RequestProgress asks the running watch for a progress notification: a
// Batch without events whose Revision proves everything up to the member's
// revision delivered. Requests made while one is pending are merged; the
// member ignores requests while the watch is catching up, so a caller
// waiting for a revision asks again.
func (f *Follower) RequestProgress() {
	select {
	case f.progress <- struct{}{}:
	default:
	}
}

// Unavailable is why the follower cannot follow the keyspace now (the
// member refuses its identity), or nil.
func (f *Follower) Unavailable() error {
	f.authMu.Lock()
	defer f.authMu.Unlock()
	return f.authErr
}

// StoreIndex reads the member's current revision as the follower: the
// follower's own position may trail a write a client has just seen
// acknowledged.
func (f *Follower) StoreIndex(ctx context.Context) (v2store.Meta, error) {
	k, _ := v2store.Keyspace(f.opts.Prefix)
	octx, err := f.own(ctx)
	if err != nil {
		return v2store.Meta{}, err
	}
	r, err := etcdrpc.NewKVClient(f.up.ClientConn()).Range(octx, &pb.RangeRequest{Key: k, CountOnly: true, Serializable: true})
	if err != nil {
		return v2store.Meta{}, err
	}
	return v2store.MetaOf(r.Header), nil
}

// Run follows the keyspace until ctx ends, retrying every upstream failure
// itself; it returns nil then, once what it started has stopped.
func (f *Follower) Run(ctx context.Context) error {
	var cleanups sync.WaitGroup
	defer cleanups.Wait()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := f.start(ctx); err != nil {
			f.log.Warn("v2 follower cannot read the store index", zap.Error(err))
			ctxtime.Sleep(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		break
	}
	renewed := 0 // consecutive watches refused for their token
	for ctx.Err() == nil {
		from := f.position() + 1
		err := f.watch(ctx, from, &cleanups)
		if ctx.Err() != nil {
			break
		}
		f.restarts.Inc()
		pause := 200 * time.Millisecond
		switch uerr := f.Unavailable(); {
		case f.tokenRefused(err):
			// The token, not the identity: it expired, or the member
			// does not know it (it restarted, or has not applied the
			// Authenticate yet). watch renewed it; try again at once, so
			// that the long polls waiting on the history see no gap.
			// A fresh token refused again waits a little, growing.
			pause = time.Duration(renewed) * freshTokenPause
			renewed = min(renewed+1, maxFreshTokenPauses)
			f.log.Info("v2 follower's token refused by the member: renewed, resuming the upstream watch",
				zap.Int64("from-revision", from), zap.Error(err))
		case uerr != nil:
			// Refused for its identity: that changes when an operator
			// acts (auth off, --user, a grant), not in milliseconds.
			renewed = 0
			pause = time.Second
			f.log.Warn("v2 follower refused by the member", zap.Error(uerr))
		default:
			renewed = 0
			f.log.Info("v2 follower resuming the upstream watch", zap.Int64("from-revision", from), zap.Error(err))
		}
		if pause > 0 {
			f.pause(ctx, pause)
		}
	}
	return nil
}

// A watch refused for a token just renewed is retried freshTokenPause
// later, then twice that, up to maxFreshTokenPauses times it: a member
// applies an Authenticate within milliseconds of its commit unless it is
// overloaded or still catching up after a restart.
const (
	freshTokenPause     = 100 * time.Millisecond
	maxFreshTokenPauses = 10
)

// tokenRefused reports whether err is the member refusing the token the
// follower's identity carried (which refused has renewed).
func (f *Follower) tokenRefused(err error) bool {
	return f.opts.Identity != nil && etcderr.InvalidToken(err)
}

func (f *Follower) position() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

// own is ctx with the shim's identity, if it has one.
func (f *Follower) own(ctx context.Context) (context.Context, error) {
	if f.opts.Identity == nil {
		return ctx, nil
	}
	return f.opts.Identity.Context(ctx)
}

// refused records whether err is the member refusing the follower's
// identity or its rights. A refused token is not that: the identity renews
// it, and whether the identity is refused stays as it was.
func (f *Follower) refused(ctx, used context.Context, err error) {
	if f.tokenRefused(err) {
		f.opts.Identity.Renew(ctx, used, err)
		return
	}
	var authErr error
	if err != nil && etcderr.Denied(err) {
		authErr = ErrNeedsIdentity
		if f.opts.Identity != nil {
			authErr = fmt.Errorf("the member refuses the v2 watch to the shim's --user (it needs read permission on the v2 keyspace, <--v2-prefix>/): %w", err)
		}
	}
	f.authMu.Lock()
	f.authErr = authErr
	f.authMu.Unlock()
}

// start reads the store index: the first watch starts after it.
func (f *Follower) start(ctx context.Context) error {
	k, end := v2store.Keyspace(f.opts.Prefix)
	octx, err := f.own(ctx)
	if err != nil {
		f.refused(ctx, ctx, err)
		return err
	}
	r, err := etcdrpc.NewKVClient(f.up.ClientConn()).Range(octx, &pb.RangeRequest{Key: k, RangeEnd: end, CountOnly: true})
	f.refused(ctx, octx, err)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.current = r.Header.Revision
	f.mu.Unlock()
	return nil
}

// watch follows the keyspace from revision from until the stream breaks.
func (f *Follower) watch(runCtx context.Context, from int64, cleanups *sync.WaitGroup) (err error) {
	ctx, cancel := context.WithCancel(runCtx)
	defer cancel()
	octx, err := f.own(ctx)
	if err != nil {
		f.refused(ctx, ctx, err)
		return err
	}
	// Require a leader, as clientv3 does, so a partitioned member's watch
	// fails over instead of going silent.
	octx = metadata.AppendToOutgoingContext(octx, "hasleader", "true")
	ws, err := etcdrpc.NewWatchClient(f.up.ClientConn()).Watch(octx)
	if err != nil {
		f.refused(ctx, octx, err)
		return fmt.Errorf("opening the watch: %w", err)
	}
	k, end := v2store.Keyspace(f.opts.Prefix)
	if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: k, RangeEnd: end, StartRevision: from, PrevKv: true, ProgressNotify: true}}}); err != nil {
		return fmt.Errorf("creating the watch: %w", err)
	}
	compacted := int64(0)
	defer func() { f.broken(compacted, err) }()
	forwarding := make(chan struct{})
	go func() {
		defer close(forwarding)
		f.forwardProgress(ctx, ws)
	}()
	defer func() {
		cancel()
		<-forwarding
	}()
	for {
		resp, err := ws.Recv()
		switch {
		case err != nil:
			f.refused(ctx, octx, err)
			return fmt.Errorf("watch stream: %w", err)
		case resp.CompactRevision != 0:
			compacted = resp.CompactRevision
			return fmt.Errorf("revision %d was compacted (oldest %d)", from, resp.CompactRevision)
		case resp.Canceled:
			err := etcderr.WatchCanceled(resp.CancelReason)
			f.refused(ctx, octx, err)
			return fmt.Errorf("watch canceled by the member: %w", err)
		case resp.Created:
			f.refused(ctx, octx, nil)
			f.resumed(resp.Header.GetMemberId())
		default:
			f.deliver(runCtx, resp, cleanups)
		}
	}
}

// forwardProgress sends the progress requests made while the watch runs.
func (f *Follower) forwardProgress(ctx context.Context, ws pb.Watch_WatchClient) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.progress:
			if ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}) != nil {
				return
			}
		}
	}
}

func (f *Follower) resumed(member uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live, f.member = true, member
	for s := range f.subs {
		s.s.Resumed(f.current, member)
	}
}

// broken tells the subscribers that the watch ended: those that saw it run,
// and all of them when history was lost.
func (f *Follower) broken(compacted int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	wasLive := f.live
	f.live = false
	if compacted > 0 && f.current < compacted-1 {
		f.current = compacted - 1
	}
	if !wasLive && compacted == 0 {
		return
	}
	for s := range f.subs {
		s.s.Broken(compacted, err)
	}
}

// deliver decodes resp once and hands it to every subscriber. Removals of
// expired directories' contents it starts run until they finish or ctx
// (Run's, not the stream's) ends.
func (f *Follower) deliver(ctx context.Context, resp *pb.WatchResponse, cleanups *sync.WaitGroup) {
	b := &Batch{Events: resp.Events, Revision: etcdrpc.DeliveredRevision(resp)}
	if len(resp.Events) > 0 {
		b.Changes = f.layout.Changes(resp.Events)
	}
	f.mu.Lock()
	if b.Revision > f.current {
		f.current = b.Revision
	}
	for s := range f.subs {
		s.s.Apply(b)
	}
	f.mu.Unlock()
	for _, c := range b.Changes {
		if c.Event.Action == v2store.ActionExpire && c.Dir {
			cleanups.Add(1)
			go func() {
				defer cleanups.Done()
				f.expireSubtree(ctx, c.Path)
			}()
		}
	}
}

// expireSubtree removes the keys left below a directory whose TTL ran out
// (3.4 expires a directory with its subtree).
func (f *Follower) expireSubtree(ctx context.Context, p string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	octx, err := f.own(ctx)
	if err == nil {
		_, err = etcdrpc.NewKVClient(f.up.ClientConn()).Txn(octx, v2store.ExpireSubtreeRequest(f.opts.Prefix, p))
	}
	if err != nil {
		f.log.Warn("removing an expired directory's contents failed", zap.String("dir", p), zap.Error(err))
	}
}
