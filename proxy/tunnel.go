package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/upstream"
	"go.uber.org/zap"
	"golang.org/x/net/http2/hpack"
)

// streamingMethods are etcd's long-lived gRPC streams. On shutdown the shim
// waits for other (unary) calls to finish and ends these with Unavailable, on
// which etcd's clients reconnect and resume.
var streamingMethods = map[string]bool{
	"/etcdserverpb.Watch/Watch":          true,
	"/etcdserverpb.Lease/LeaseKeepAlive": true,
	"/etcdserverpb.Maintenance/Snapshot": true,
	"/v3electionpb.Election/Observe":     true,
	"/grpc.health.v1.Health/Watch":       true,
}

// A drain's PING (RFC 9113 §6.7): the client answers it after every frame it
// sent before, so once its ACK is relayed every stream the client opened
// before it read the GOAWAY is known to the tunnel.
const (
	framePing = 0x6
	flagAck   = 0x1
)

var drainPingData = [8]byte{'e', 't', 'c', 'd', 's', 'h', 'i', 'm'}

type streamState struct {
	streaming   bool
	respHeaders bool // the upstream has sent response headers
}

// tunnel relays one client HTTP/2 (gRPC) connection to one upstream member.
// Bytes are forwarded unchanged in both directions; the tunnel only tracks
// frame boundaries and stream lifetimes.
type tunnel struct {
	client   net.Conn
	upstream net.Conn
	link     *upstream.Link // nil in tests without a pool
	log      *zap.Logger
	m        *metrics

	// client → upstream bookkeeping (only the client pump touches these)
	cScan     frameScanner
	dec       *hpack.Decoder
	decBroken bool
	hdrStream uint32 // stream whose header block is being decoded
	hdrPath   string
	ctype     string

	mu        sync.Mutex // guards streams and lastOpen
	streams   map[uint32]*streamState
	lastOpen  uint32
	drained   chan struct{} // closed (under mu) when draining, the PING answered and no unary stream is open
	draining  bool
	pingAcked bool // the client answered the drain's PING

	wmu     sync.Mutex // serialises writes to the client (pump and injections)
	uScan   frameScanner
	pending []byte // frames to inject at the next boundary

	closeOnce sync.Once
	done      chan struct{}
}

func newTunnel(client net.Conn, log *zap.Logger, m *metrics) *tunnel {
	t := &tunnel{
		client:  client,
		log:     log,
		m:       m,
		streams: make(map[uint32]*streamState),
		done:    make(chan struct{}),
	}
	t.cScan = frameScanner{
		skip: len(clientPreface),
		want: func(h frameHeader) bool {
			return h.typ == frameHeaders || h.typ == frameContinuation ||
				(h.typ == framePing && h.flags&flagAck != 0 && h.length == 8)
		},
		onFrame: t.onClientFrame,
	}
	t.uScan = frameScanner{onFrame: t.onUpstreamFrame}
	// The client's encoder may use whatever table size the upstream allows;
	// accept large tables rather than fail a well-behaved client.
	t.dec = hpack.NewDecoder(4096, t.onHeaderField)
	t.dec.SetAllowedMaxDynamicTableSize(1 << 20)
	t.dec.SetMaxStringLength(maxHeaderString)
	return t
}

// maxHeaderString bounds one header name or value the tunnel decodes.
// Without it the decoder held a value announced as 15 MiB and sent in
// CONTINUATION frames whole, as the member does (its own bound is 16 MiB
// of headers): four such connections cost the shim 147 MB more, as much as
// the member. No gRPC client sends such a field (the shim's own HTTP
// server takes 1 MiB of headers in all); past it the tunnel relays the
// connection without following its streams, and the member judges it.
const maxHeaderString = 1 << 20

func (t *tunnel) onHeaderField(f hpack.HeaderField) {
	switch f.Name {
	case ":path":
		t.hdrPath = f.Value
	case "content-type":
		t.ctype = f.Value
	}
}

func (t *tunnel) onClientFrame(h frameHeader, payload []byte) {
	switch h.typ {
	case frameHeaders:
		frag, ok := headerBlockFragment(h, payload)
		if !ok {
			t.decBroken = true
			return
		}
		t.hdrStream, t.hdrPath = h.streamID, ""
		t.decode(frag, h.flags&flagEndHeaders != 0)
	case frameContinuation:
		t.decode(payload, h.flags&flagEndHeaders != 0)
	case frameRSTStream:
		t.closeStream(h.streamID)
	case framePing:
		if len(payload) == len(drainPingData) && [8]byte(payload) == drainPingData {
			t.mu.Lock()
			t.pingAcked = true
			t.checkDrainedLocked()
			t.mu.Unlock()
		}
	}
}

func (t *tunnel) decode(frag []byte, end bool) {
	if t.decBroken {
		return
	}
	if _, err := t.dec.Write(frag); err != nil {
		// The upstream will reject this connection too; stop tracking.
		t.decBroken = true
		return
	}
	if !end {
		return
	}
	if err := t.dec.Close(); err != nil {
		t.decBroken = true
		return
	}
	t.mu.Lock()
	if _, known := t.streams[t.hdrStream]; !known && t.hdrStream > t.lastOpen {
		t.lastOpen = t.hdrStream
		t.streams[t.hdrStream] = &streamState{streaming: isStreaming(t.hdrPath)}
		t.m.grpcStreams.Inc()
	}
	t.mu.Unlock()
}

func isStreaming(path string) bool { return streamingMethods[path] }

func (t *tunnel) onUpstreamFrame(h frameHeader, _ []byte) {
	switch h.typ {
	case frameHeaders:
		if h.flags&flagEndStream != 0 {
			t.closeStream(h.streamID)
			return
		}
		t.mu.Lock()
		if s := t.streams[h.streamID]; s != nil {
			s.respHeaders = true
		}
		t.mu.Unlock()
	case frameData:
		if h.flags&flagEndStream != 0 {
			t.closeStream(h.streamID)
		}
	case frameRSTStream:
		t.closeStream(h.streamID)
	case frameGoAway:
		// The member is going away (graceful stop): steer new connections
		// elsewhere now rather than at the next probe.
		if t.link != nil {
			t.link.MemberGoingAway()
		}
	}
}

func (t *tunnel) closeStream(id uint32) {
	t.mu.Lock()
	delete(t.streams, id)
	t.checkDrainedLocked()
	t.mu.Unlock()
}

func (t *tunnel) checkDrainedLocked() {
	if !t.draining || t.drained == nil || !t.pingAcked {
		return
	}
	for _, s := range t.streams {
		if !s.streaming {
			return
		}
	}
	close(t.drained)
	t.drained = nil
}

// runPrescanned relays until either side closes. initial holds client bytes
// already read and scanned while sniffing.
func (t *tunnel) runPrescanned(initial []byte) {
	defer t.close()
	if t.link != nil {
		t.link.Attach()
		defer t.link.Detach()
	}
	if len(initial) > 0 {
		if _, err := t.upstream.Write(initial); err != nil {
			return
		}
		t.m.grpcBytes.WithLabelValues("client_to_upstream").Add(float64(len(initial)))
	}
	errc := make(chan error, 2)
	go func() { errc <- t.pumpClient() }()
	go func() { errc <- t.pumpUpstream() }()
	err := <-errc
	if err != nil && !isClosedConnErr(err) {
		t.log.Debug("grpc tunnel ended", zap.Error(err))
	}
}

// pre-scan bytes read while sniffing: they are scanned before run.
func (t *tunnel) prescan(p []byte) { t.cScan.scan(p, false) }

func (t *tunnel) pumpClient() error {
	return t.pump(t.client, "client_to_upstream", func(p []byte) error {
		t.cScan.scan(p, false)
		_, err := t.upstream.Write(p)
		return err
	})
}

func (t *tunnel) pumpUpstream() error {
	return t.pump(t.upstream, "upstream_to_client", t.forwardToClient)
}

// pump reads src and hands what it read to forward until either fails,
// counting the bytes relayed in that direction.
func (t *tunnel) pump(src io.Reader, direction string, forward func([]byte) error) error {
	buf := make([]byte, 32*1024)
	counter := t.m.grpcBytes.WithLabelValues(direction)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if werr := forward(buf[:n]); werr != nil {
				return werr
			}
			counter.Add(float64(n))
		}
		if err != nil {
			return err
		}
	}
}

func (t *tunnel) forwardToClient(p []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	for len(p) > 0 {
		if t.pending == nil {
			t.uScan.scan(p, false)
			_, err := t.client.Write(p)
			return err
		}
		if t.uScan.atBoundary() {
			if err := t.flushPendingLocked(); err != nil {
				return err
			}
			continue
		}
		k := t.uScan.scan(p, true)
		if _, err := t.client.Write(p[:k]); err != nil {
			return err
		}
		p = p[k:]
	}
	if t.pending != nil && t.uScan.atBoundary() {
		return t.flushPendingLocked()
	}
	return nil
}

func (t *tunnel) flushPendingLocked() error {
	_, err := t.client.Write(t.pending)
	t.pending = nil
	return err
}

// inject queues frames for the client at the next frame boundary.
func (t *tunnel) inject(frames []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.pending = append(t.pending, frames...)
	if t.uScan.atBoundary() {
		return t.flushPendingLocked()
	}
	return nil
}

// beginDrain tells the client to open no new streams (GOAWAY with the
// highest stream id, so streams already on the wire are still served, as an
// HTTP/2 server's graceful shutdown does) and returns a channel closed once
// no unary call is in flight. "None in flight" counts only after the client
// answered the PING sent behind the GOAWAY: before, a request it sent just
// before reading the GOAWAY may still be on its way, and closing the
// tunnel then would cut it.
func (t *tunnel) beginDrain() <-chan struct{} {
	return t.beginDrainWith("etcdshim shutting down")
}

func (t *tunnel) beginDrainWith(debug string) <-chan struct{} {
	t.mu.Lock()
	t.draining = true
	ch := make(chan struct{})
	t.drained = ch
	t.checkDrainedLocked()
	t.mu.Unlock()
	ping := appendFrameHeader(nil, frameHeader{length: 8, typ: framePing})
	_ = t.inject(append(append(goAwayFrame(0x7fffffff, debug), ping...), drainPingData[:]...))
	return ch
}

// Move sends the client elsewhere without failing a call (the pool calls it
// on a failback or a drain; upstream.Relay): GOAWAY (new calls go to a new
// connection, which the shim relays to the member now preferred), unary calls already sent finish on this member, and after
// they did (or after wait) long streams end with Unavailable, on which
// etcd's clients resume them — watches from their last revision — on the
// new connection.
//
// The GOAWAY carries the highest stream id, not the last one seen: a byte
// tunnel cannot refuse a stream the client sends after it (dropping a
// HEADERS frame would desynchronise HPACK between client and member), so
// every stream the client opens until it reads the GOAWAY is relayed and
// served, and none may be announced as unprocessed (the client would send
// it again).
func (t *tunnel) Move(wait time.Duration, why string) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-t.beginDrainWith("etcdshim: " + why):
	case <-t.done:
		return
	case <-timer.C:
	}
	t.endStreamsWith("etcdshim: " + why + ", reconnect")
}

// endStreams ends every open stream with gRPC status Unavailable and closes
// the tunnel. The trailers are HPACK literals that never touch the dynamic
// table, so the client's decoder stays in step with the upstream's encoder.
func (t *tunnel) endStreams() { t.endStreamsWith("etcdshim is shutting down") }

func (t *tunnel) endStreamsWith(msg string) {
	t.mu.Lock()
	var frames []byte
	for id, s := range t.streams {
		frames = append(frames, unavailableTrailersMsg(id, !s.respHeaders, msg)...)
	}
	t.mu.Unlock()
	if len(frames) > 0 {
		_ = t.inject(frames)
	}
	t.close()
}

func (t *tunnel) close() {
	t.closeOnce.Do(func() {
		t.client.Close()
		if t.upstream != nil {
			t.upstream.Close()
		}
		close(t.done)
	})
}

func goAwayFrame(lastStream uint32, debug string) []byte {
	payload := make([]byte, 8, 8+len(debug))
	payload[0], payload[1], payload[2], payload[3] = byte(lastStream>>24)&0x7f, byte(lastStream>>16), byte(lastStream>>8), byte(lastStream)
	payload = append(payload, debug...)
	out := appendFrameHeader(nil, frameHeader{length: uint32(len(payload)), typ: frameGoAway})
	return append(out, payload...)
}

func unavailableTrailers(streamID uint32, trailersOnly bool) []byte {
	return unavailableTrailersMsg(streamID, trailersOnly, "etcdshim is shutting down")
}

func unavailableTrailersMsg(streamID uint32, trailersOnly bool, msg string) []byte {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	write := func(name, value string) {
		// Sensitive fields are encoded as never-indexed literals.
		_ = enc.WriteField(hpack.HeaderField{Name: name, Value: value, Sensitive: true})
	}
	if trailersOnly {
		write(":status", "200")
		write("content-type", "application/grpc")
	}
	write("grpc-status", "14")
	write("grpc-message", msg)
	out := appendFrameHeader(nil, frameHeader{
		length: uint32(block.Len()), typ: frameHeaders,
		flags: flagEndStream | flagEndHeaders, streamID: streamID,
	})
	return append(out, block.Bytes()...)
}

func isClosedConnErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// The pool moves tunnels off members it leaves.
var _ upstream.Relay = (*tunnel)(nil)
