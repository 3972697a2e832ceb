package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/upstream"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

type testPKI struct {
	dir                   string
	caPool                *x509.CertPool
	serverCert, serverKey string
	caFile                string
	client                tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcdshim test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := &testPKI{dir: dir, caPool: x509.NewCertPool()}
	p.caPool.AddCert(caCert)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string, tls.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		cf := writePEM(t, dir, name+".pem", "CERTIFICATE", der)
		kf := writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
		pair, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			t.Fatal(err)
		}
		return cf, kf, pair
	}
	p.serverCert, p.serverKey, _ = issue("server", 2, x509.ExtKeyUsageServerAuth)
	_, _, p.client = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startTLSShim(t *testing.T, pki *testPKI, clientCertAuth bool, member string) string {
	t.Helper()
	port := freeTestPort(t)
	log := zaptest.NewLogger(t)
	opts := testOptions(fmt.Sprintf("https://127.0.0.1:%d", port))
	tc, err := ServerTLS(TLSFiles{CertFile: pki.serverCert, KeyFile: pki.serverKey, TrustedCAFile: pki.caFile, ClientCertAuth: clientCertAuth}, log)
	if err != nil {
		t.Fatal(err)
	}
	opts.TLS = tc
	pool, err := upstream.NewPool(upstream.Options{Endpoints: []*url.URL{{Scheme: "http", Host: member}}, DialTimeout: time.Second,
		HealthInterval: time.Second, HealthTimeout: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	startServer(t, opts, pool, log)
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func TestTLSListenerSplitsGRPCAndHTTP(t *testing.T) {
	pki := newTestPKI(t)
	member := startFakeMember(t)
	for _, mtls := range []bool{false, true} {
		t.Run(fmt.Sprintf("client-cert-auth=%v", mtls), func(t *testing.T) {
			addr := startTLSShim(t, pki, mtls, member.addr)
			clientTLS := &tls.Config{RootCAs: pki.caPool, Certificates: []tls.Certificate{pki.client}}

			cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatalf("gRPC over TLS: %v", err)
			}

			for _, h2 := range []bool{false, true} {
				tr := &http.Transport{TLSClientConfig: clientTLS.Clone(), ForceAttemptHTTP2: h2}
				if !h2 {
					tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
				}
				resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/health")
				if err != nil {
					t.Fatalf("HTTP (h2=%v) over TLS: %v", h2, err)
				}
				resp.Body.Close()
				if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
					t.Fatalf("protocol HTTP/%d, want HTTP/%d", resp.ProtoMajor, want)
				}
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("status %d: the fake member has no /health, the shim must answer 503", resp.StatusCode)
				}
			}

			if mtls {
				noCert := &tls.Config{RootCAs: pki.caPool}
				c := &http.Client{Transport: &http.Transport{TLSClientConfig: noCert}, Timeout: 5 * time.Second}
				if resp, err := c.Get("https://" + addr + "/health"); err == nil {
					resp.Body.Close()
					t.Fatal("a client without a certificate was served with --client-cert-auth")
				}
			}
		})
	}
}
