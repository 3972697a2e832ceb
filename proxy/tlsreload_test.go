package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/internal/testpki"
	"go.uber.org/zap/zaptest"
)

// tlsEcho serves TLS with cfg and echoes; it reports the client certificate
// serial of each connection.
func tlsEcho(t *testing.T, cfg *tls.Config) (string, <-chan int64) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	serials := make(chan int64, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
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
			}()
		}
	}()
	return ln.Addr().String(), serials
}

func roundTrip(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("write on an established connection: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read on an established connection: %v", err)
	}
}

// tlsFiles is a certificate, its key and a CA bundle on disk, as a pair of
// TLS flags names them, with two CAs to rotate between.
type tlsFiles struct {
	caA, caB      *testpki.CA
	usage         x509.ExtKeyUsage
	cert, key, ca string
}

// newTLSFiles writes a first pair from CA A (with serial, for usage) and CA
// A's bundle.
func newTLSFiles(t *testing.T, serial int64, usage x509.ExtKeyUsage) *tlsFiles {
	t.Helper()
	dir := t.TempDir()
	f := &tlsFiles{caA: testpki.NewCA(t, "A"), caB: testpki.NewCA(t, "B"), usage: usage,
		cert: filepath.Join(dir, "tls.pem"), key: filepath.Join(dir, "tls-key.pem"), ca: filepath.Join(dir, "ca.pem")}
	f.rotate(t, f.caA, serial, f.caA)
	return f
}

// rotate replaces the pair with one issuer signs (serial) and the bundle
// with bundle's certificate, as cert-manager replaces files.
func (f *tlsFiles) rotate(t *testing.T, issuer *testpki.CA, serial int64, bundle *testpki.CA) {
	t.Helper()
	c, k := issuer.Issue(t, serial, "rot", f.usage)
	testpki.Replace(t, f.cert, c)
	testpki.Replace(t, f.key, k)
	testpki.Replace(t, f.ca, bundle.PEM)
}

// TestServerTLSReloadsFiles: replacing --cert-file/--key-file and
// --trusted-ca-file changes what new handshakes get and accept, and a
// connection made before keeps working.
func TestServerTLSReloadsFiles(t *testing.T) {
	files := newTLSFiles(t, 101, x509.ExtKeyUsageServerAuth)
	caA, caB := files.caA, files.caB
	cfg := config.Config{CertFile: files.cert, KeyFile: files.key, TrustedCAFile: files.ca, ClientCertAuth: true}
	srvTLS, err := ServerTLSLogged(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr, clientSerials := tlsEcho(t, srvTLS)

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
	<-clientSerials
	refused("a client certificate from CA B was accepted while --trusted-ca-file holds only CA A", pairB)
	<-clientSerials

	// Rotate: a new server pair from CA B, and a bundle trusting only B.
	files.rotate(t, caB, 102, caB)

	accepted("after rotation, a client from CA B", pairB, 102)
	if s := <-clientSerials; s != 202 {
		t.Fatalf("server saw client serial %d", s)
	}
	refused("after rotation a client certificate from CA A was still accepted", pairA)
	<-clientSerials
	roundTrip(t, old)

	// A half-done rotation (certificate replaced, key not yet) keeps the
	// last good pair serving.
	c3, _ := caB.Issue(t, 103, "rot", x509.ExtKeyUsageServerAuth)
	testpki.Replace(t, files.cert, c3)
	accepted("with a mismatched pair on disk, the last good pair", pairB, 102)
}

// TestUpstreamTLSReloadsFiles: replacing --cert/--key changes the client
// certificate new upstream handshakes present, and replacing --cacert
// changes which member certificates verify.
func TestUpstreamTLSReloadsFiles(t *testing.T) {
	files := newTLSFiles(t, 301, x509.ExtKeyUsageClientAuth)
	caA, caB := files.caA, files.caB
	upTLS, err := UpstreamTLSLogged(config.Config{UpstreamCert: files.cert, UpstreamKey: files.key, UpstreamCACert: files.ca}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}

	clientRoots := x509.NewCertPool()
	clientRoots.AddCert(caA.Cert)
	member := func(ca *testpki.CA, serial int64) (string, <-chan int64) {
		cp, kp := ca.Issue(t, serial, "rot", x509.ExtKeyUsageServerAuth)
		pair, _ := tls.X509KeyPair(cp, kp)
		return tlsEcho(t, &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientRoots})
	}
	addrA, serialsA := member(caA, 401)
	addrB, serialsB := member(caB, 402)
	dial := func(addr string) (*tls.Conn, error) {
		return tls.Dial("tcp", addr, forServer(upTLS, "127.0.0.1"))
	}

	// verified dials a member that must verify and checks the client
	// certificate it saw; refused dials one that must not verify.
	verified := func(when, addr string, serials <-chan int64, want int64) *tls.Conn {
		t.Helper()
		c, err := dial(addr)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		t.Cleanup(func() { c.Close() })
		roundTrip(t, c)
		if s := <-serials; s != want {
			t.Fatalf("%s: the member saw client serial %d, want %d", when, s, want)
		}
		return c
	}
	refused := func(why, addr string) {
		t.Helper()
		if c, err := dial(addr); err == nil {
			c.Close()
			t.Fatal(why)
		}
	}

	old := verified("before rotation, a member from CA A", addrA, serialsA, 301)
	refused("a member certificate from CA B verified while --cacert holds only CA A", addrB)
	<-serialsB // the refused handshake

	files.rotate(t, caA, 302, caB)

	verified("after replacing --cacert, a member from CA B", addrB, serialsB, 302)
	refused("after replacing --cacert a member from CA A still verified", addrA)
	roundTrip(t, old)

	// The verification is for the member's name, not any name the CA signed.
	if c, err := tls.Dial("tcp", addrB, forServer(upTLS, "etcd.example")); err == nil {
		c.Close()
		t.Fatal("a member certificate without the dialled name verified")
	}
}
