package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// sniffTimeout bounds how long a new connection may stay silent before the
// shim decides what it is. HTTP/1 and gRPC clients speak first.
const sniffTimeout = 10 * time.Second

// headersWait is how long a TLS HTTP/2 connection may go without sending its
// first request headers before it is taken for gRPC: some gRPC clients wait
// for the server's SETTINGS before they send a request, JSON clients do not.
const headersWait = 500 * time.Millisecond

// maxSniffBytes bounds what the shim holds of a TLS HTTP/2 connection
// while it waits for the first request's headers: a client's preface,
// SETTINGS and first header block fit many times over, and a client that
// sends more before them is closed rather than buffered.
const maxSniffBytes = 256 << 10

// errSniffTooLarge closes a connection that passed maxSniffBytes.
var errSniffTooLarge = errors.New("more bytes than the classification bound before the first request headers")

// connKind is what a new client connection turned out to be.
type connKind int

const (
	connHTTP  connKind = iota // HTTP/1.x or a TLS HTTP/2 client that is not gRPC
	connGRPC                  // gRPC (any HTTP/2 on a plain listener)
	connClose                 // nothing to serve: closed during classification
)

// handleConn decides what a new client connection is and hands it on:
// HTTP/2 with content-type application/grpc to a tunnel, the rest to the
// HTTP server. Plain-text HTTP/2 (prior knowledge) is always gRPC, as etcd's
// own listener treats it.
func (s *Server) handleConn(c net.Conn, secure bool) {
	kind, buf, t, _ := s.classify(c, secure)
	switch kind {
	case connClose:
		c.Close()
	case connHTTP:
		s.serveHTTP1(&replayConn{Conn: c, buf: buf})
	case connGRPC:
		s.startTunnel(t, buf)
	}
}

// classify reads what it needs of a new connection to tell HTTP from gRPC;
// buf holds the bytes read, to be replayed, and t the tunnel for gRPC.
func (s *Server) classify(c net.Conn, secure bool) (connKind, []byte, *tunnel, error) {
	if secure {
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(sniffTimeout))
		if err := tc.HandshakeContext(s.ctx); err != nil {
			s.log.Debug("TLS handshake failed", zap.String("remote", c.RemoteAddr().String()), zap.Error(err))
			return connClose, nil, nil, err
		}
		_ = tc.SetDeadline(time.Time{})
	}
	return s.sniff(c, secure)
}

// sniff classifies a connection from its first bytes (after the TLS
// handshake when secure).
func (s *Server) sniff(c net.Conn, secure bool) (connKind, []byte, *tunnel, error) {
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	buf := make([]byte, 0, 4096)
	isH2 := false
	for len(buf) < len(clientPreface) {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if !strings.HasPrefix(clientPreface, string(buf[:min(len(buf), len(clientPreface))])) {
			break // not HTTP/2: HTTP/1.x
		}
		if len(buf) >= len(clientPreface) {
			isH2 = true
			break
		}
		if err != nil {
			return connClose, nil, nil, err
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	if !isH2 {
		return connHTTP, buf, nil, nil
	}
	t := newTunnel(c, s.log, s.m)
	if !secure {
		t.prescan(buf)
		return connGRPC, buf, t, nil
	}
	grpc, more, err := s.sniffHeaders(c, t, buf)
	if err != nil {
		return connClose, nil, nil, err
	}
	if !grpc {
		return connHTTP, more, nil, nil
	}
	return connGRPC, more, t, nil
}

// sniffHeaders reads frames until the first request's header block is
// decoded, feeding the tunnel's scanner so its HPACK state stays in step.
// It holds at most maxSniffBytes.
func (s *Server) sniffHeaders(c net.Conn, t *tunnel, buf []byte) (grpc bool, all []byte, err error) {
	scanned := 0
	deadline := time.Now().Add(headersWait)
	for {
		scanned += t.cScan.scan(buf[scanned:], false)
		t.mu.Lock()
		seen := len(t.streams) > 0 || t.lastOpen > 0
		t.mu.Unlock()
		if seen || t.decBroken {
			return strings.HasPrefix(t.ctype, "application/grpc"), buf, nil
		}
		if len(buf) >= maxSniffBytes {
			s.log.Warn("closing a client connection: it sent more than the classification bound before its first request headers",
				zap.String("remote", c.RemoteAddr().String()), zap.Int("bound_bytes", maxSniffBytes))
			return false, nil, errSniffTooLarge
		}
		_ = c.SetReadDeadline(deadline)
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, min(cap(buf), maxSniffBytes-len(buf)))...)[:len(buf)]
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr != nil {
			var ne net.Error
			if errors.As(rerr, &ne) && ne.Timeout() {
				_ = c.SetReadDeadline(time.Time{})
				t.cScan.scan(buf[scanned:], false)
				return true, buf, nil
			}
			return false, nil, rerr
		}
		_ = c.SetReadDeadline(time.Time{})
	}
}

func (s *Server) startTunnel(t *tunnel, initial []byte) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.DialTimeout)
	up, link, err := s.pool.DialRelay(ctx, t)
	cancel()
	if err != nil {
		s.log.Warn("cannot relay gRPC connection", zap.String("remote", t.client.RemoteAddr().String()), zap.Error(err))
		t.client.Close()
		return
	}
	t.upstream, t.link = up, link
	if !s.trackTunnel(t) {
		t.close()
		return
	}
	defer s.untrackTunnel(t)
	s.m.grpcConns.Inc()
	s.m.grpcConnsActive.Inc()
	defer s.m.grpcConnsActive.Dec()
	t.runPrescanned(initial)
}

// replayConn returns bytes read while sniffing before reading on.
type replayConn struct {
	net.Conn
	buf []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.buf) > 0 {
		n := copy(p, r.buf)
		r.buf = r.buf[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// connListener hands connections chosen for HTTP to an http.Server.
type connListener struct {
	addr      net.Addr
	conns     chan net.Conn
	closeOnce sync.Once
	closed    chan struct{}
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *connListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
