package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// scriptConn is a connection whose client sends data in the given chunks,
// then either stays silent (a read times out) or closes.
type scriptConn struct {
	net.Conn
	chunks  [][]byte
	silence bool
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func (c *scriptConn) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		if c.silence {
			return 0, timeoutErr{}
		}
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func (c *scriptConn) SetReadDeadline(time.Time) error { return nil }
func (c *scriptConn) SetDeadline(time.Time) error     { return nil }
func (c *scriptConn) RemoteAddr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (c *scriptConn) Close() error                    { return nil }

// FuzzClassify feeds arbitrary first bytes, in two chunks, to the connection
// classifier as a plain and as a TLS connection (after the handshake): it
// never panics, never holds more than its bound, replays exactly the bytes
// it read, and answers the same however the bytes were chunked.
func FuzzClassify(f *testing.F) {
	f.Add([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), 5, false, false)
	f.Add([]byte(clientPreface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), 3, true, true)
	f.Add([]byte(clientPreface+"\x00\x00\x05\x01\x2d\x00\x00\x00\x01\x09\x00\x00\x00\x00"), 28, true, false)
	f.Add(append([]byte(clientPreface), unavailableTrailers(1, true)...), 30, true, true)
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x40\x00\x00\x00\x00\x00\x00\x00"), 10, true, false)
	s := &Server{ctx: context.Background(), log: nopLogger, m: newMetrics(nil)}
	f.Fuzz(func(t *testing.T, data []byte, split int, secure, silence bool) {
		if split < 0 {
			split = -split
		}
		split %= len(data) + 1
		run := func(chunks ...[]byte) (connKind, []byte, error) {
			var cs [][]byte
			for _, c := range chunks {
				cs = append(cs, append([]byte(nil), c...))
			}
			kind, buf, _, err := s.sniff(&scriptConn{chunks: cs, silence: silence}, secure)
			if len(buf) > maxSniffBytes+4096 {
				t.Fatalf("held %d bytes", len(buf))
			}
			if kind != connClose && !bytesPrefix(data, buf) {
				t.Fatalf("replays %q, not a prefix of what was sent", buf)
			}
			return kind, buf, err
		}
		k1, _, e1 := run(data)
		k2, _, e2 := run(data[:split], data[split:])
		if secure && (k1 != k2 || errors.Is(e1, errSniffTooLarge) != errors.Is(e2, errSniffTooLarge)) {
			t.Fatalf("chunking changes the verdict: %v/%v vs %v/%v", k1, e1, k2, e2)
		}
	})
}

func bytesPrefix(whole, p []byte) bool {
	return len(p) <= len(whole) && string(whole[:len(p)]) == string(p)
}
