package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA signs certificates valid from an hour ago for a day.
type CA struct {
	Cert *x509.Certificate
	// PEM is Cert encoded, as a --trusted-ca-file or --cacert holds it.
	PEM []byte
	key *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA named cn.
func NewCA(tb testing.TB, cn string) *CA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &CA{Cert: c, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// Issue signs a certificate named cn for 127.0.0.1 and localhost, with the
// given serial (tests tell rotated certificates apart by it) and usages.
func (ca *CA) Issue(tb testing.TB, serial int64, cn string, usages ...x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: usages,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// Replace writes data to path as Kubernetes and cert-manager do: a new file
// renamed over the old one, so a reader never sees half of it.
func Replace(tb testing.TB, path string, data []byte) {
	tb.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// Files are a certificate, its key and a CA bundle on disk, as a pair of
// TLS flags names them, with two CAs to rotate between.
type Files struct {
	CAA, CAB      *CA
	Usage         x509.ExtKeyUsage
	Cert, Key, CA string
}

// NewFiles writes a first pair from CA A (with serial, for usage) and CA
// A's bundle into a new temporary directory.
func NewFiles(tb testing.TB, serial int64, usage x509.ExtKeyUsage) *Files {
	tb.Helper()
	dir := tb.TempDir()
	f := &Files{CAA: NewCA(tb, "A"), CAB: NewCA(tb, "B"), Usage: usage,
		Cert: filepath.Join(dir, "tls.pem"), Key: filepath.Join(dir, "tls-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	f.Rotate(tb, f.CAA, serial, f.CAA)
	return f
}

// Rotate replaces the pair with one issuer signs (serial) and the bundle
// with bundle's certificate, as cert-manager replaces files.
func (f *Files) Rotate(tb testing.TB, issuer *CA, serial int64, bundle *CA) {
	tb.Helper()
	c, k := issuer.Issue(tb, serial, "rot", f.Usage)
	Replace(tb, f.Cert, c)
	Replace(tb, f.Key, k)
	Replace(tb, f.CA, bundle.PEM)
}
