package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/testpki"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"go.uber.org/zap/zaptest"
)

// TestServerTLSReloadsFiles: replacing --cert-file/--key-file and
// --trusted-ca-file changes what new handshakes get and accept, and a
// connection made before keeps working.
func TestServerTLSReloadsFiles(t *testing.T) {
	files := testpki.NewFiles(t, 101, x509.ExtKeyUsageServerAuth)
	caA, caB := files.CAA, files.CAB
	srvTLS, err := ServerTLS(TLSFiles{CertFile: files.Cert, KeyFile: files.Key, TrustedCAFile: files.CA, ClientCertAuth: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr, clientSerials := testpki.Echo(t, srvTLS)

	roots := x509.NewCertPool()
	roots.AddCert(caA.Cert)
	roots.AddCert(caB.Cert)
	clientA, clientAKey := caA.Issue(t, 201, "rot", x509.ExtKeyUsageClientAuth)
	clientB, clientBKey := caB.Issue(t, 202, "rot", x509.ExtKeyUsageClientAuth)
	pairA, _ := tls.X509KeyPair(clientA, clientAKey)
	pairB, _ := tls.X509KeyPair(clientB, clientBKey)
	dial := func(pair tls.Certificate) (*tls.Conn, error) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
		if err != nil {
			return nil, err
		}
		// TLS 1.3 reports a refused client certificate on the first read.
		roundTripErr := func() error {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
			_, err := io.ReadFull(c, make([]byte, 4))
			return err
		}()
		if roundTripErr != nil {
			c.Close()
			return nil, roundTripErr
		}
		return c, nil
	}
	// accepted dials with a client pair the server must accept and checks
	// the server certificate it presented; refused dials with one it must
	// refuse.
	accepted := func(when string, pair tls.Certificate, wantServer int64) *tls.Conn {
		t.Helper()
		c, err := dial(pair)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		t.Cleanup(func() { c.Close() })
		if got := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != wantServer {
			t.Fatalf("%s: the server presented serial %d, want %d", when, got, wantServer)
		}
		return c
	}
	refused := func(why string, pair tls.Certificate) {
		t.Helper()
		if c, err := dial(pair); err == nil {
			c.Close()
			t.Fatal(why)
		}
	}

	old := accepted("before rotation, a client from CA A", pairA, 101)
	waitfor.Recv(t, clientSerials, hangGuard, "the server's view of the client")
	refused("a client certificate from CA B was accepted while --trusted-ca-file holds only CA A", pairB)
	waitfor.Recv(t, clientSerials, hangGuard, "the server's view of the refused client")

	// Rotate: a new server pair from CA B, and a bundle trusting only B.
	files.Rotate(t, caB, 102, caB)

	accepted("after rotation, a client from CA B", pairB, 102)
	if s := waitfor.Recv(t, clientSerials, hangGuard, "the server's view of the client"); s != 202 {
		t.Fatalf("server saw client serial %d", s)
	}
	refused("after rotation a client certificate from CA A was still accepted", pairA)
	waitfor.Recv(t, clientSerials, hangGuard, "the server's view of the refused client")
	testpki.RoundTrip(t, old)

	// A half-done rotation (certificate replaced, key not yet) keeps the
	// last good pair serving.
	c3, _ := caB.Issue(t, 103, "rot", x509.ExtKeyUsageServerAuth)
	testpki.Replace(t, files.Cert, c3)
	accepted("with a mismatched pair on disk, the last good pair", pairB, 102)
}
