package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/testpki"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// TestClientTLSOff: without --cert, --cacert or --insecure-skip-tls-verify
// the pool has no TLS configuration of its own (https:// endpoints get the
// system roots), and a bundle that does not load is refused at startup.
func TestClientTLSOff(t *testing.T) {
	if tc, err := ClientTLS(TLSFiles{}, zap.NewNop()); tc != nil || err != nil {
		t.Fatalf("nothing set: %v, %v; want neither a configuration nor an error", tc, err)
	}
	if _, err := ClientTLS(TLSFiles{CACert: t.TempDir() + "/missing.pem"}, zap.NewNop()); err == nil {
		t.Fatal("a --cacert that does not exist was accepted")
	}
}

// TestUpstreamTLSReloadsFiles: replacing --cert/--key changes the client
// certificate new upstream handshakes present, and replacing --cacert
// changes which member certificates verify.
func TestUpstreamTLSReloadsFiles(t *testing.T) {
	files := testpki.NewFiles(t, 301, x509.ExtKeyUsageClientAuth)
	upTLS, err := ClientTLS(TLSFiles{Cert: files.Cert, Key: files.Key, CACert: files.CA}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	caA, caB := files.CAA, files.CAB

	clientRoots := x509.NewCertPool()
	clientRoots.AddCert(caA.Cert)
	member := func(ca *testpki.CA, serial int64) (string, <-chan int64) {
		cp, kp := ca.Issue(t, serial, "rot", x509.ExtKeyUsageServerAuth)
		pair, _ := tls.X509KeyPair(cp, kp)
		return testpki.Echo(t, &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientRoots})
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
		testpki.RoundTrip(t, c)
		if s := waitfor.Recv(t, serials, 20*time.Second, "the member's view of the client"); s != want {
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
	waitfor.Recv(t, serialsB, 20*time.Second, "the refused handshake")

	files.Rotate(t, caA, 302, caB)

	verified("after replacing --cacert, a member from CA B", addrB, serialsB, 302)
	refused("after replacing --cacert a member from CA A still verified", addrA)
	testpki.RoundTrip(t, old)

	// The verification is for the member's name, not any name the CA signed.
	if c, err := tls.Dial("tcp", addrB, forServer(upTLS, "etcd.example")); err == nil {
		c.Close()
		t.Fatal("a member certificate without the dialled name verified")
	}
}
