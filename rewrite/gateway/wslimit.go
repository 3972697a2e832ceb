package gateway

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// grpc-websocket-proxy reads each websocket message whole (gorilla's
// ReadMessage) and offers no way to set gorilla's read limit, so one frame
// header announcing a gigabyte made the shim buffer a gigabyte. The socket
// it upgrades is wrapped here: the frames the client sends are followed
// header by header, and a message whose frames add up to more than
// --max-request-bytes ends the socket before its payload is read, with the
// close frame gorilla's own limit would send (1009, message too big).

// errMessageTooBig is what the proxy's read of the socket gets.
var errMessageTooBig = errors.New("websocket message larger than the request limit")

// limitMessages wraps w so that the connection it hijacks refuses client
// messages over max bytes.
type limitMessages struct {
	http.ResponseWriter
	max int64
}

func (l limitMessages) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(l.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	lc := &limitedConn{Conn: c, frames: frameLimit{max: uint64(l.max)}}
	// A reader over the bare connection would skip the limit. Bytes the
	// client sent before the handshake completed make gorilla refuse the
	// upgrade, so there is nothing to keep when there are any.
	if brw.Reader.Buffered() == 0 {
		brw.Reader.Reset(lc)
	}
	return lc, brw, nil
}

// limitedConn is the upgraded socket, server side.
type limitedConn struct {
	net.Conn
	mu      sync.Mutex // frames: gorilla reads from one goroutine, Close may come from another
	frames  frameLimit
	tooBig  bool
	closing sync.Once
}

func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tooBig {
		return 0, errMessageTooBig
	}
	if ferr := c.frames.feed(p[:n]); ferr != nil {
		c.tooBig = true
		return 0, ferr
	}
	return n, err
}

// Close sends the close frame for a message over the limit, then closes
// as HTTP servers do after refusing a body: the write side first, then
// what the client is still sending is read and dropped for a moment, so
// the close frame is not lost to a reset.
func (c *limitedConn) Close() error {
	c.mu.Lock()
	tooBig := c.tooBig
	c.mu.Unlock()
	if !tooBig {
		return c.Conn.Close()
	}
	var err error
	c.closing.Do(func() {
		_ = c.Conn.SetDeadline(time.Now().Add(lingerTimeout))
		reason := fmt.Sprintf("message larger than %d bytes", c.frames.max)
		_, _ = c.Conn.Write(append([]byte{0x88, byte(2 + len(reason)), 0x03, 0xf1}, reason...)) // 1009
		if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
		}
		err = c.Conn.Close()
	})
	return err
}

// How long, and how much, a refused client's remaining bytes are drained.
const (
	lingerTimeout = time.Second
	lingerBytes   = 1 << 20
)

// frameLimit follows the frames of a client's byte stream (RFC 6455 5.2)
// and fails as soon as a header makes the current message longer than
// max. Control frames (ping, pong, close) are not part of a message.
type frameLimit struct {
	max     uint64
	hdr     [14]byte
	have    int    // header bytes read
	need    int    // header bytes the frame has (0: not known yet)
	skip    uint64 // payload bytes of the current frame not read yet
	message uint64 // payload bytes of the current message's frames so far
}

func (f *frameLimit) feed(p []byte) error {
	for len(p) > 0 {
		if f.skip > 0 {
			n := min(uint64(len(p)), f.skip)
			f.skip -= n
			p = p[n:]
			continue
		}
		want := f.need
		if want == 0 {
			want = 2
		}
		k := copy(f.hdr[f.have:want], p)
		f.have += k
		p = p[k:]
		if f.have < want {
			return nil
		}
		if f.need == 0 {
			f.need = 2 + extendedLength(f.hdr[1]&0x7f)
			if f.hdr[1]&0x80 != 0 {
				f.need += 4 // masking key
			}
			continue
		}
		n := f.payloadLength()
		if f.hdr[0]&0x0f < 8 { // continuation, text or binary
			if n > f.max || f.message > f.max-n {
				return errMessageTooBig
			}
			f.message += n
			if f.hdr[0]&0x80 != 0 { // FIN: the message ends with this frame
				f.message = 0
			}
		}
		f.skip, f.have, f.need = n, 0, 0
	}
	return nil
}

func extendedLength(l7 byte) int {
	switch l7 {
	case 126:
		return 2
	case 127:
		return 8
	}
	return 0
}

func (f *frameLimit) payloadLength() uint64 {
	switch l7 := f.hdr[1] & 0x7f; l7 {
	case 126:
		return uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
	case 127:
		return binary.BigEndian.Uint64(f.hdr[2:10])
	default:
		return uint64(l7)
	}
}
