package harness

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/etcdshim/etcdshim/internal/testpki"
)

// TLSFiles are PEM files of a test PKI.
type TLSFiles struct {
	CA                    string
	ServerCert, ServerKey string
	// ClientCert/ClientKey have CN "client"; RootCert/RootKey have CN "root".
	ClientCert, ClientKey string
	RootCert, RootKey     string
	// ClientCertAuth makes servers require client certificates.
	ClientCertAuth bool
	// Issuer is the CA that signed them, to issue replacements as
	// cert-manager renews certificates (Reissue).
	Issuer *testpki.CA
	pool   *x509.CertPool
}

// NewTestPKI writes a CA, a server certificate for 127.0.0.1/localhost and
// client certificates into dir.
func NewTestPKI(tb testing.TB, dir string) *TLSFiles {
	tb.Helper()
	ca := testpki.NewCA(tb, "etcdshim e2e CA")
	f := &TLSFiles{CA: writeFile(tb, dir, "ca.pem", ca.PEM), Issuer: ca, pool: x509.NewCertPool()}
	f.pool.AddCert(ca.Cert)
	issue := func(name string, serial int64, usages ...x509.ExtKeyUsage) (string, string) {
		cert, key := ca.Issue(tb, serial, name, usages...)
		return writeFile(tb, dir, name+".pem", cert), writeFile(tb, dir, name+"-key.pem", key)
	}
	// etcd uses its server certificate as a client towards peers, hence both usages.
	f.ServerCert, f.ServerKey = issue("server", 2, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	f.ClientCert, f.ClientKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	f.RootCert, f.RootKey = issue("root", 4, x509.ExtKeyUsageClientAuth)
	return f
}

func writeFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// RequiringClientCerts is f for a server that requires client certificates
// (ClientCertAuth), leaving f as it is.
func (f *TLSFiles) RequiringClientCerts() *TLSFiles {
	c := *f
	c.ClientCertAuth = true
	return &c
}

// ClientConfig is a TLS client configuration trusting the CA and presenting
// the "client" certificate.
func (f *TLSFiles) ClientConfig() *tls.Config {
	cert, _ := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	return &tls.Config{RootCAs: f.pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// CopyTo writes a copy of the CA, server and client files into dir and
// returns it, so that one process's certificates can be replaced on disk
// without touching another's. The root pair is not copied.
func (f *TLSFiles) CopyTo(tb testing.TB, dir string) *TLSFiles {
	tb.Helper()
	c := *f
	c.RootCert, c.RootKey = "", ""
	for _, p := range []*string{&c.CA, &c.ServerCert, &c.ServerKey, &c.ClientCert, &c.ClientKey} {
		b, err := os.ReadFile(*p)
		if err != nil {
			tb.Fatal(err)
		}
		*p = writeFile(tb, dir, filepath.Base(*p), b)
	}
	return &c
}

// Reissue replaces the server pair with a new certificate of the same CA
// (serial serverSerial) and the client pair likewise (clientSerial), each
// file renamed over the old one as cert-manager and Kubernetes do.
func (f *TLSFiles) Reissue(tb testing.TB, serverSerial, clientSerial int64) {
	tb.Helper()
	sc, sk := f.Issuer.Issue(tb, serverSerial, "server", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	cc, ck := f.Issuer.Issue(tb, clientSerial, "client", x509.ExtKeyUsageClientAuth)
	testpki.Replace(tb, f.ServerCert, sc)
	testpki.Replace(tb, f.ServerKey, sk)
	testpki.Replace(tb, f.ClientCert, cc)
	testpki.Replace(tb, f.ClientKey, ck)
}

// Pool is a certificate pool holding the CA.
func (f *TLSFiles) Pool() *x509.CertPool { return f.pool }
