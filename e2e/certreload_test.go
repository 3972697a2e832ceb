package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/internal/testpki"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestCertReload: the shim's certificate files are replaced on disk while it
// runs. On the client side, new handshakes get the new server certificate
// and are verified against the new --trusted-ca-file; on the upstream side,
// new connections to the member present the new --cert and verify the
// member against the new --cacert. A client connected before the rotation
// keeps its connection and is served throughout.
func TestCertReload(t *testing.T) {
	e2eParallel(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	memberPKI := harness.NewTestPKI(t, filepath.Join(dir, "member")).RequiringClientCerts()
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.6", Size: 1, TLS: memberPKI})

	// The shim's client-facing PKI: CA A now, CA B after the rotation.
	caA, caB := testpki.NewCA(t, "client-side A"), testpki.NewCA(t, "client-side B")
	shimDir := filepath.Join(dir, "shim")
	if err := os.MkdirAll(shimDir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(shimDir, name) }
	sc, sk := caA.Issue(t, 1001, "shim", x509.ExtKeyUsageServerAuth)
	testpki.Replace(t, p("server.pem"), sc)
	testpki.Replace(t, p("server-key.pem"), sk)
	testpki.Replace(t, p("trusted-ca.pem"), caA.PEM)
	// Upstream files: copies of the member PKI's client pair and CA.
	for from, to := range map[string]string{memberPKI.ClientCert: "up.pem", memberPKI.ClientKey: "up-key.pem", memberPKI.CA: "up-ca.pem"} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		testpki.Replace(t, p(to), b)
	}
	// The harness's plain listener answers /health and /metrics/shim; the
	// clients use the https one.
	port := harness.FreePort(t)
	shimURL := "https://127.0.0.1:" + strconv.Itoa(port)
	shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), Args: []string{
		"--listen-client-urls", shimURL,
		"--cert-file", p("server.pem"), "--key-file", p("server-key.pem"),
		"--trusted-ca-file", p("trusted-ca.pem"), "--client-cert-auth",
		"--cert", p("up.pem"), "--key", p("up-key.pem"), "--cacert", p("up-ca.pem"),
	}})

	roots := x509.NewCertPool()
	roots.AddCert(caA.Cert)
	roots.AddCert(caB.Cert)
	clientPair := func(ca *testpki.CA, serial int64) tls.Certificate {
		c, k := ca.Issue(t, serial, "client", x509.ExtKeyUsageClientAuth)
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	pairA, pairB := clientPair(caA, 2001), clientPair(caB, 2002)
	dialer := func(pair tls.Certificate) func() (*clientv3.Client, error) {
		return func() (*clientv3.Client, error) {
			return clientv3.New(clientv3.Config{Endpoints: []string{shimURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
				TLS: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}})
		}
	}
	// works runs one write and one read on c.
	works := func(c *clientv3.Client, key string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Put(ctx, key, "v"); err != nil {
			return err
		}
		_, err := c.Get(ctx, key)
		return err
	}
	serverSerial := func(pair tls.Certificate) (int64, error) {
		c, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
	}
	connsTotal := func() float64 {
		return scrapeSum(t, shim.URL, "etcdshim_grpc_connections_total")
	}

	old, err := dialer(pairA)()
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := works(old, "rot/before"); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	if s, err := serverSerial(pairA); err != nil || s != 1001 {
		t.Fatalf("server certificate before rotation: serial %d, %v", s, err)
	}
	if err := tryOnce(dialer(pairB), "rot/refused"); err == nil {
		t.Fatal("a client certificate from CA B was accepted before the rotation")
	}
	conns := connsTotal()

	t.Run("client side", func(t *testing.T) {
		sc2, sk2 := caB.Issue(t, 1002, "shim", x509.ExtKeyUsageServerAuth)
		testpki.Replace(t, p("server.pem"), sc2)
		testpki.Replace(t, p("server-key.pem"), sk2)
		testpki.Replace(t, p("trusted-ca.pem"), caB.PEM)
		if s, err := serverSerial(pairB); err != nil || s != 1002 {
			t.Fatalf("a new handshake after rotation: serial %d, %v; want the new certificate 1002", s, err)
		}
		if err := tryOnce(dialer(pairB), "rot/new-client"); err != nil {
			t.Fatalf("a client from the new CA after rotation: %v", err)
		}
		if err := tryOnce(dialer(pairA), "rot/old-ca"); err == nil {
			t.Fatal("after rotation a new client from the old CA was still accepted")
		}
	})

	t.Run("upstream side", func(t *testing.T) {
		// A client certificate the member does not trust: new upstream
		// handshakes must present it, so new connections fail...
		stranger := testpki.NewCA(t, "stranger")
		bc, bk := stranger.Issue(t, 3001, "client", x509.ExtKeyUsageClientAuth)
		testpki.Replace(t, p("up.pem"), bc)
		testpki.Replace(t, p("up-key.pem"), bk)
		if err := tryOnce(dialer(pairB), "rot/up-untrusted"); err == nil {
			t.Fatal("with an untrusted upstream client certificate on disk a new connection was still served: the file was not re-read")
		}
		// ...until a valid one is back (a new certificate from the member's CA
		// is not available here: the harness keeps no CA key, so the
		// original pair is restored).
		for from, to := range map[string]string{memberPKI.ClientCert: "up.pem", memberPKI.ClientKey: "up-key.pem"} {
			b, _ := os.ReadFile(from)
			testpki.Replace(t, p(to), b)
		}
		if err := tryOnce(dialer(pairB), "rot/up-restored"); err != nil {
			t.Fatalf("after restoring the upstream certificate: %v", err)
		}
		// The same with --cacert: a bundle without the member's CA fails
		// new handshakes, the right one serves again.
		testpki.Replace(t, p("up-ca.pem"), stranger.PEM)
		if err := tryOnce(dialer(pairB), "rot/up-wrong-ca"); err == nil {
			t.Fatal("with a --cacert that does not hold the member's CA a new connection was still served")
		}
		b, _ := os.ReadFile(memberPKI.CA)
		testpki.Replace(t, p("up-ca.pem"), b)
		if err := tryOnce(dialer(pairB), "rot/up-ca-restored"); err != nil {
			t.Fatalf("after restoring --cacert: %v", err)
		}
	})

	// The connection made before every rotation is still the same one and
	// still served.
	before := connsTotal()
	if err := works(old, "rot/old-after"); err != nil {
		t.Fatalf("the client connected before the rotations: %v", err)
	}
	if after := connsTotal(); after != before {
		t.Fatalf("the old client needed a new connection (%v → %v relayed connections): its connection did not survive", before, after)
	}
	if before <= conns {
		t.Fatalf("relayed connections %v → %v: the new clients were not counted", conns, before)
	}
	if s := scrapeSum(t, shim.URL, "etcdshim_tunnels"); s < 1 {
		t.Fatalf("etcdshim_tunnels %v with the old client connected", s)
	}
}

// tryOnce runs works on a new client and closes it, so that a client the
// test expects to fail does not keep reconnecting in the background.
func tryOnce(newClient func() (*clientv3.Client, error), key string) error {
	c, err := newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, key, "v"); err != nil {
		return err
	}
	_, err = c.Get(ctx, key)
	return err
}

// scrapeSum adds up every series of one metric on the shim's /metrics/shim.
func scrapeSum(t *testing.T, shimURL, name string) float64 {
	t.Helper()
	_, _, values := textPage(t, shimURL+"/metrics/shim")
	sum := 0.0
	for series, value := range values {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric %s %q", series, value)
		}
		sum += v
	}
	return sum
}
