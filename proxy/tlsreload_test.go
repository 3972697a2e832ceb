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

// TestServerTLSReloadsFiles: replacing --cert-file/--key-file and
// --trusted-ca-file changes what new handshakes get and accept, and a
// connection made before keeps working.
func TestServerTLSReloadsFiles(t *testing.T) {
	dir := t.TempDir()
	caA, caB := testpki.NewCA(t, "A"), testpki.NewCA(t, "B")
	certPath, keyPath, caPath := filepath.Join(dir, "s.pem"), filepath.Join(dir, "s-key.pem"), filepath.Join(dir, "ca.pem")
	c1, k1 := caA.Issue(t, 101, "rot", x509.ExtKeyUsageServerAuth)
	testpki.Replace(t, certPath, c1)
	testpki.Replace(t, keyPath, k1)
	testpki.Replace(t, caPath, caA.PEM)
	cfg := config.Config{CertFile: certPath, KeyFile: keyPath, TrustedCAFile: caPath, ClientCertAuth: true}
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
	serverSerial := func(c *tls.Conn) int64 { return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64() }

	old, err := dial(pairA)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got := serverSerial(old); got != 101 {
		t.Fatalf("server certificate serial %d, want 101", got)
	}
	<-clientSerials
	if _, err := dial(pairB); err == nil {
		t.Fatal("a client certificate from CA B was accepted while --trusted-ca-file holds only CA A")
	}
	<-clientSerials

	// Rotate: a new server pair from CA B, and a bundle trusting only B.
	c2, k2 := caB.Issue(t, 102, "rot", x509.ExtKeyUsageServerAuth)
	testpki.Replace(t, certPath, c2)
	testpki.Replace(t, keyPath, k2)
	testpki.Replace(t, caPath, caB.PEM)

	fresh, err := dial(pairB)
	if err != nil {
		t.Fatalf("after rotation, a client from CA B: %v", err)
	}
	defer fresh.Close()
	if got := serverSerial(fresh); got != 102 {
		t.Fatalf("after rotation the server certificate serial is %d, want 102", got)
	}
	if s := <-clientSerials; s != 202 {
		t.Fatalf("server saw client serial %d", s)
	}
	if _, err := dial(pairA); err == nil {
		t.Fatal("after rotation a client certificate from CA A was still accepted")
	}
	<-clientSerials
	roundTrip(t, old)

	// A half-done rotation (certificate replaced, key not yet) keeps the
	// last good pair serving.
	c3, _ := caB.Issue(t, 103, "rot", x509.ExtKeyUsageServerAuth)
	testpki.Replace(t, certPath, c3)
	mid, err := dial(pairB)
	if err != nil {
		t.Fatalf("during a half-done rotation: %v", err)
	}
	defer mid.Close()
	if got := serverSerial(mid); got != 102 {
		t.Fatalf("with a mismatched pair on disk the server presented serial %d, want the last good 102", got)
	}
}

// TestUpstreamTLSReloadsFiles: replacing --cert/--key changes the client
// certificate new upstream handshakes present, and replacing --cacert
// changes which member certificates verify.
func TestUpstreamTLSReloadsFiles(t *testing.T) {
	dir := t.TempDir()
	caA, caB := testpki.NewCA(t, "A"), testpki.NewCA(t, "B")
	certPath, keyPath, caPath := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c-key.pem"), filepath.Join(dir, "ca.pem")
	c1, k1 := caA.Issue(t, 301, "rot", x509.ExtKeyUsageClientAuth)
	testpki.Replace(t, certPath, c1)
	testpki.Replace(t, keyPath, k1)
	testpki.Replace(t, caPath, caA.PEM)
	upTLS, err := UpstreamTLSLogged(config.Config{UpstreamCert: certPath, UpstreamKey: keyPath, UpstreamCACert: caPath}, zaptest.NewLogger(t))
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

	old, err := dial(addrA)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	roundTrip(t, old)
	if s := <-serialsA; s != 301 {
		t.Fatalf("member saw client serial %d, want 301", s)
	}
	if c, err := dial(addrB); err == nil {
		c.Close()
		t.Fatal("a member certificate from CA B verified while --cacert holds only CA A")
	}
	<-serialsB // the refused handshake

	c2, k2 := caA.Issue(t, 302, "rot", x509.ExtKeyUsageClientAuth)
	testpki.Replace(t, certPath, c2)
	testpki.Replace(t, keyPath, k2)
	testpki.Replace(t, caPath, caB.PEM)

	fresh, err := dial(addrB)
	if err != nil {
		t.Fatalf("after replacing --cacert, a member from CA B: %v", err)
	}
	defer fresh.Close()
	roundTrip(t, fresh)
	if s := <-serialsB; s != 302 {
		t.Fatalf("after rotation the member saw client serial %d, want 302", s)
	}
	if c, err := dial(addrA); err == nil {
		c.Close()
		t.Fatal("after replacing --cacert a member from CA A still verified")
	}
	roundTrip(t, old)

	// The verification is for the member's name, not any name the CA signed.
	if c, err := tls.Dial("tcp", addrB, forServer(upTLS, "etcd.example")); err == nil {
		c.Close()
		t.Fatal("a member certificate without the dialled name verified")
	}
}
