package testpki

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/testnet"
)

// Echo serves TLS with cfg on a loopback port and echoes what each
// connection sends; it reports the serial of each connection's client
// certificate (0: none, -1: the handshake failed).
func Echo(tb testing.TB, cfg *tls.Config) (string, <-chan int64) {
	tb.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		tb.Fatal(err)
	}
	serials := make(chan int64, 16)
	testnet.Serve(tb, ln, func(c net.Conn) {
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			serials <- -1
			return
		}
		var s int64
		if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
			s = pc[0].SerialNumber.Int64()
		}
		serials <- s
		_, _ = io.Copy(c, c)
	})
	return ln.Addr().String(), serials
}

// RoundTrip sends a few bytes on an established connection to Echo and
// reads them back, failing the test when that does not work.
func RoundTrip(tb testing.TB, c net.Conn) {
	tb.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		tb.Fatalf("write on an established connection: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		tb.Fatalf("read on an established connection: %v", err)
	}
}
