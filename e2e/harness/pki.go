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
	pool           *x509.CertPool
}

// NewTestPKI writes a CA, a server certificate for 127.0.0.1/localhost and
// client certificates into dir.
func NewTestPKI(tb testing.TB, dir string) *TLSFiles {
	tb.Helper()
	ca := testpki.NewCA(tb, "etcdshim e2e CA")
	f := &TLSFiles{CA: writeFile(tb, dir, "ca.pem", ca.PEM), pool: x509.NewCertPool()}
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
