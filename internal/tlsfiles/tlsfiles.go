package tlsfiles

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"

	"go.uber.org/zap"
)

// The files are read at each handshake (a few hundred bytes, next to a
// handshake's signatures) and parsed only when their bytes changed.
// Established connections keep the certificate they were set up with.
//
// A pair that does not load (the certificate replaced and the key not yet,
// a half-written file) keeps the previous one serving, with a warning; only
// the very first load is fatal, at startup.

// KeyPair is a certificate and key re-read on each handshake.
type KeyPair struct {
	certPath, keyPath string
	log               *zap.Logger

	mu              sync.Mutex
	certPEM, keyPEM []byte
	cert            *tls.Certificate
	lastErr         string
}

// LoadKeyPair loads the pair once, failing when it does not load now.
func LoadKeyPair(certPath, keyPath string, log *zap.Logger) (*KeyPair, error) {
	k := &KeyPair{certPath: certPath, keyPath: keyPath, log: log}
	if _, err := k.Current(); err != nil {
		return nil, err
	}
	return k, nil
}

// Current returns the pair on disk now, or the last good one when the files
// cannot be loaded.
func (k *KeyPair) Current() (*tls.Certificate, error) {
	certPEM, cerr := os.ReadFile(k.certPath)
	keyPEM, kerr := os.ReadFile(k.keyPath)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := errors.Join(cerr, kerr); err != nil {
		return k.keep(err)
	}
	if k.cert != nil && bytes.Equal(certPEM, k.certPEM) && bytes.Equal(keyPEM, k.keyPEM) {
		return k.cert, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return k.keep(err)
	}
	if k.cert != nil {
		k.log.Info("certificate reloaded", zap.String("cert", k.certPath), zap.String("key", k.keyPath))
	}
	k.certPEM, k.keyPEM, k.cert, k.lastErr = certPEM, keyPEM, &cert, ""
	return k.cert, nil
}

// keep answers with the last good pair; called with mu held.
func (k *KeyPair) keep(err error) (*tls.Certificate, error) {
	if k.cert == nil {
		return nil, err
	}
	if s := err.Error(); s != k.lastErr {
		k.lastErr = s
		k.log.Warn("certificate files do not load; still using the previous certificate",
			zap.String("cert", k.certPath), zap.String("key", k.keyPath), zap.Error(err))
	}
	return k.cert, nil
}

// CABundle is a CA bundle re-read on each handshake.
type CABundle struct {
	path string
	log  *zap.Logger

	mu      sync.Mutex
	pem     []byte
	pool    *x509.CertPool
	lastErr string
}

// LoadCABundle loads the bundle once, failing when it does not load now.
func LoadCABundle(path string, log *zap.Logger) (*CABundle, error) {
	c := &CABundle{path: path, log: log}
	if _, err := c.Current(); err != nil {
		return nil, err
	}
	return c, nil
}

// Current returns the bundle on disk now, or the last good one when the
// file cannot be loaded.
func (c *CABundle) Current() (*x509.CertPool, error) {
	data, err := os.ReadFile(c.path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && c.pool != nil && bytes.Equal(data, c.pem) {
		return c.pool, nil
	}
	if err == nil {
		pool := x509.NewCertPool()
		if pool.AppendCertsFromPEM(data) {
			if c.pool != nil {
				c.log.Info("CA bundle reloaded", zap.String("file", c.path))
			}
			c.pem, c.pool, c.lastErr = data, pool, ""
			return pool, nil
		}
		err = fmt.Errorf("%s holds no PEM certificate", c.path)
	}
	if c.pool == nil {
		return nil, err
	}
	if s := err.Error(); s != c.lastErr {
		c.lastErr = s
		c.log.Warn("CA bundle does not load; still using the previous one", zap.String("file", c.path), zap.Error(err))
	}
	return c.pool, nil
}

// VerifyServer checks a server's certificate chain against the bundle on
// disk now, for name.
func (c *CABundle) VerifyServer(cs tls.ConnectionState, name string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the member presented no certificate")
	}
	roots, err := c.Current()
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, cert := range cs.PeerCertificates[1:] {
		inter.AddCert(cert)
	}
	_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, DNSName: name,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}
