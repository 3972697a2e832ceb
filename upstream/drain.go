package upstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// Moving traffic between members. Two things move tunnels (relayed client
// gRPC connections) and the shim's own streams off a member:
//
//   - failback: the preferred member (the sidecar's own, first in
//     --endpoints) is healthy again while tunnels sit on a fallback; each is
//     moved after a random delay below PoolOptions.FailbackWindow, so that a
//     thousand clients do not reconnect in the same second;
//   - a planned drain (Drain): the member is about to stop; it is taken out
//     of rotation at once and everything on it moves now.
//
// A move never fails a call: see Relay.Move.

// Planned-drain states of an endpoint.
const (
	drainOff int32 = iota
	// drainUp: drained while the member still answers probes.
	drainUp
	// drainSawDown: the member stopped since; the next successful probe
	// ends the drain (it was restarted, e.g. with a new version).
	drainSawDown
)

var errDrained = errors.New("drained by the operator")

// drainedProbe advances the drain state with a probe's verdict and reports
// whether the member may serve again.
func (ep *endpoint) drainedProbe(ok bool) bool {
	switch {
	case !ok:
		ep.drain.CompareAndSwap(drainUp, drainSawDown)
		return false
	case ep.drain.CompareAndSwap(drainSawDown, drainOff):
		ep.pool.log.Info("drained member is serving again: traffic returns", zap.String("endpoint", ep.url.String()))
		return true
	}
	return false
}

// watchForStop notices that a drained member stopped. Probes alone miss a
// quick restart: a probe waits for the connection to be ready again and then
// sees the restarted member serving. The connection leaving READY (the
// member's GOAWAY, a closed socket) or failing to connect is the signal.
func (ep *endpoint) watchForStop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ep.pool.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	seenReady := false
	for ep.drain.Load() == drainUp {
		st := ep.conn.GetState()
		switch {
		case st == connectivity.Ready:
			seenReady = true
		case st == connectivity.TransientFailure || seenReady:
			if ep.drain.CompareAndSwap(drainUp, drainSawDown) {
				ep.pool.log.Info("drained member stopped; it returns to rotation once it serves again", zap.String("endpoint", ep.url.String()))
			}
			return
		default:
			ep.conn.Connect() // an idle connection would never report a stop
		}
		if !ep.conn.WaitForStateChange(ctx, st) {
			return
		}
	}
}

// shouldLeave reports whether tunnels on ep should move: ep is drained, or
// a member earlier in the order of preference is the current one and healthy.
func (p *Pool) shouldLeave(ep *endpoint) bool {
	if ep.drain.Load() != drainOff {
		return true
	}
	cur := p.current()
	return cur != ep && cur.idx < ep.idx && cur.healthy.Load()
}

// rebalance schedules a move for every tunnel on a member it should leave.
// Own streams on such a member are ended at once (they are few, and their
// owners resume them on the current member).
func (p *Pool) rebalance() {
	for _, ep := range p.eps {
		if !p.shouldLeave(ep) {
			continue
		}
		planned := ep.drain.Load() != drainOff
		reason := "failback"
		if planned {
			reason = "drain"
		}
		ep.mu.Lock()
		var moves []Relay
		for r, moving := range ep.relays {
			if !moving {
				ep.relays[r] = true
				moves = append(moves, r)
			}
		}
		streams := make([]*ownStream, 0, len(ep.streams))
		for s := range ep.streams {
			streams = append(streams, s)
		}
		ep.mu.Unlock()
		for _, s := range streams {
			s.leave()
		}
		for _, r := range moves {
			time.AfterFunc(p.moveDelay(planned), func() {
				if !p.shouldLeave(ep) {
					// The reason went away (the preferred member failed
					// again): stay, and be eligible for a later move.
					ep.mu.Lock()
					if _, ok := ep.relays[r]; ok {
						ep.relays[r] = false
					}
					ep.mu.Unlock()
					return
				}
				p.m.tunnelMoves.WithLabelValues(ep.url.String(), reason).Inc()
				r.Move(p.opts.MoveTimeout, "moving to member "+p.current().url.Host)
			})
		}
	}
}

// moveDelay is how long one tunnel waits before it moves: at once for a
// planned drain (the member is about to stop), else a uniform random time
// below the failback window, so that clients reconnect spread over it.
func (p *Pool) moveDelay(planned bool) time.Duration {
	if planned || p.opts.FailbackWindow <= 0 {
		return 0
	}
	return rand.N(p.opts.FailbackWindow)
}

// TunnelCounts is the number of relayed client connections per member.
func (p *Pool) TunnelCounts() map[string]int {
	out := make(map[string]int, len(p.eps))
	for _, ep := range p.eps {
		ep.mu.Lock()
		out[ep.url.String()] = len(ep.relays)
		ep.mu.Unlock()
	}
	return out
}

// InFlight is what the shim has on a member: relayed connections and its
// own calls and streams.
type InFlight struct {
	Tunnels int   `json:"tunnels"`
	Calls   int64 `json:"calls"`
}

func (ep *endpoint) inFlight() InFlight {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return InFlight{Tunnels: len(ep.relays), Calls: ep.inflight.Load()}
}

// Member returns the configured member u names (by scheme and host; nil:
// the preferred one), or an error when u is not one of the endpoints.
func (p *Pool) Member(u *url.URL) (*url.URL, error) {
	ep, err := p.endpointFor(u)
	if err != nil {
		return nil, err
	}
	return ep.url, nil
}

// InFlightOn is what the shim has on the member u names (nil: the preferred
// one); zero for a URL that is not one of the endpoints.
func (p *Pool) InFlightOn(u *url.URL) InFlight {
	ep, err := p.endpointFor(u)
	if err != nil {
		return InFlight{}
	}
	return ep.inFlight()
}

// endpointFor finds a configured member by URL; nil u is the preferred one.
func (p *Pool) endpointFor(u *url.URL) (*endpoint, error) {
	if u == nil {
		return p.eps[0], nil
	}
	for _, ep := range p.eps {
		if ep.url.Scheme == u.Scheme && ep.url.Host == u.Host {
			return ep, nil
		}
	}
	return nil, fmt.Errorf("%s is not one of --endpoints", u)
}

// Drain takes a member out of rotation, moves everything the shim has on it
// elsewhere and waits until nothing is in flight there (or ctx ends, with
// what is left in the error). nil u is the preferred member. The member
// returns to rotation by itself once it stopped and serves again, or with
// Undrain.
func (p *Pool) Drain(ctx context.Context, u *url.URL) (InFlight, error) {
	ep, err := p.endpointFor(u)
	if err != nil {
		return InFlight{}, err
	}
	if ep.drain.CompareAndSwap(drainOff, drainUp) {
		p.log.Info("draining member", zap.String("endpoint", ep.url.String()))
		go ep.watchForStop()
	}
	ep.setHealthy(false, errDrained)
	p.choose()
	p.rebalance()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		in := ep.inFlight()
		if in.Tunnels == 0 && in.Calls == 0 {
			return in, nil
		}
		select {
		case <-ctx.Done():
			return in, fmt.Errorf("member %s still has %d connections and %d calls in flight: %w", ep.url, in.Tunnels, in.Calls, ctx.Err())
		case <-tick.C:
			p.rebalance() // tunnels that arrived meanwhile
		}
	}
}

// Undrain returns a drained member to rotation (it serves again after its
// next successful probe).
func (p *Pool) Undrain(u *url.URL) error {
	ep, err := p.endpointFor(u)
	if err != nil {
		return err
	}
	if ep.drain.Swap(drainOff) != drainOff {
		p.log.Info("drain cancelled", zap.String("endpoint", ep.url.String()))
	}
	p.RequestProbe()
	return nil
}

// Draining reports whether a member is drained (nil: the preferred one).
func (p *Pool) Draining(u *url.URL) bool {
	ep, err := p.endpointFor(u)
	return err == nil && ep.drain.Load() != drainOff
}

// ownStream is a stream of the shim's own (a v2 watch, the read cache's
// watch) on one member; leaving the member ends it with Unavailable, which
// its owner answers by opening it again on the current member.
type ownStream struct {
	grpc.ClientStream
	ep     *endpoint
	cancel context.CancelFunc
	left   chan struct{}
	once   sync.Once
	gone   sync.Once
}

func (ep *endpoint) newStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	sctx, cancel := context.WithCancel(ctx)
	cs, err := ep.conn.NewStream(sctx, desc, method, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &ownStream{ClientStream: cs, ep: ep, cancel: cancel, left: make(chan struct{})}
	ep.mu.Lock()
	ep.streams[s] = struct{}{}
	ep.mu.Unlock()
	ep.inflight.Add(1)
	context.AfterFunc(sctx, s.done)
	return s, nil
}

// leave ends the stream because its member is being left.
func (s *ownStream) leave() {
	s.once.Do(func() {
		close(s.left)
		s.cancel()
	})
}

func (s *ownStream) done() {
	s.gone.Do(func() {
		s.ep.mu.Lock()
		delete(s.ep.streams, s)
		s.ep.mu.Unlock()
		s.ep.inflight.Add(-1)
	})
}

func (s *ownStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		return nil
	}
	s.done()
	s.cancel()
	select {
	case <-s.left:
		return status.Error(codes.Unavailable, "etcdshim: member "+s.ep.url.Host+" is being left, reconnect")
	default:
	}
	return err
}
