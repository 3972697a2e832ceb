package upstream

import (
	"context"
	"net"
	"time"
)

// Relay is a client connection the front relays as bytes to one member (a
// gRPC tunnel). The pool counts the relays on each member and moves them off
// a member it leaves: after a failback, or in a drain (drain.go).
type Relay interface {
	// Move sends the client elsewhere without failing a call: unary calls
	// already sent finish on this member (for at most wait), long streams
	// end with Unavailable, and the client's next connection goes to the
	// member preferred then. why is told to the client.
	Move(wait time.Duration, why string)
}

// Link ties a relay to the member it was dialled to.
type Link struct {
	ep *endpoint
	r  Relay
}

// DialRelay opens a raw connection for r to the current member, falling
// over to the next ones in order when a dial fails.
func (p *Pool) DialRelay(ctx context.Context, r Relay) (net.Conn, *Link, error) {
	c, ep, err := p.dialRelay(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, &Link{ep: ep, r: r}, nil
}

// Attach counts the relay on its member until Detach. A relay that arrives
// on a member being left is moved too.
func (l *Link) Attach() {
	ep := l.ep
	ep.mu.Lock()
	ep.relays[l.r] = false
	n := len(ep.relays)
	ep.mu.Unlock()
	ep.pool.m.tunnels.WithLabelValues(ep.url.String()).Set(float64(n))
	if ep.pool.shouldLeave(ep) {
		ep.pool.rebalance()
	}
}

// Detach stops counting the relay: its connection ended.
func (l *Link) Detach() {
	ep := l.ep
	ep.mu.Lock()
	delete(ep.relays, l.r)
	n := len(ep.relays)
	ep.mu.Unlock()
	ep.pool.m.tunnels.WithLabelValues(ep.url.String()).Set(float64(n))
}

// MemberGoingAway takes the member out of rotation now: it told the relay it
// is going away (an HTTP/2 GOAWAY on a graceful stop), and new connections
// should go elsewhere at once rather than after the next probe.
func (l *Link) MemberGoingAway() { l.ep.markDown("upstream sent GOAWAY") }
