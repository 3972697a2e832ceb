package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/etcdshim/etcdshim/config"
	"go.uber.org/zap"
)

// Certificates are read again on every new TLS handshake, as etcd does since
// 3.2: cert-manager and operators replace the files in place and expect no
// restart. The files are read each time (a few hundred bytes, next to a
// handshake's signatures) and parsed only when their bytes changed.
// Established connections keep the certificate they were set up with.
//
// A pair that does not load (the certificate replaced and the key not yet,
// a half-written file) keeps the previous one serving, with a warning; only
// the very first load is fatal, at startup.

// keyPairFiles is a certificate and key re-read on each handshake.
type keyPairFiles struct {
	certPath, keyPath string
	log               *zap.Logger

	mu              sync.Mutex
	certPEM, keyPEM []byte
	cert            *tls.Certificate
	lastErr         string
}

func loadKeyPairFiles(certPath, keyPath string, log *zap.Logger) (*keyPairFiles, error) {
	k := &keyPairFiles{certPath: certPath, keyPath: keyPath, log: log}
	if _, err := k.current(); err != nil {
		return nil, err
	}
	return k, nil
}

// current returns the pair on disk now, or the last good one when the files
// cannot be loaded.
func (k *keyPairFiles) current() (*tls.Certificate, error) {
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
func (k *keyPairFiles) keep(err error) (*tls.Certificate, error) {
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

// caFile is a CA bundle re-read on each handshake.
type caFile struct {
	path string
	log  *zap.Logger

	mu      sync.Mutex
	pem     []byte
	pool    *x509.CertPool
	lastErr string
}

func loadCAFile(path string, log *zap.Logger) (*caFile, error) {
	c := &caFile{path: path, log: log}
	if _, err := c.current(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *caFile) current() (*x509.CertPool, error) {
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

// ServerTLS builds the client-facing TLS configuration from etcd's flags:
// --cert-file/--key-file, --trusted-ca-file and --client-cert-auth. Every
// handshake sees the files as they are on disk then.
func ServerTLS(cfg config.Config) (*tls.Config, error) {
	return ServerTLSLogged(cfg, zap.NewNop())
}

// ServerTLSLogged is ServerTLS with reload events logged to log.
func ServerTLSLogged(cfg config.Config, log *zap.Logger) (*tls.Config, error) {
	pair, err := loadKeyPairFiles(cfg.CertFile, cfg.KeyFile, log)
	if err != nil {
		return nil, fmt.Errorf("loading --cert-file/--key-file: %w", err)
	}
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
	}
	if cfg.TrustedCAFile == "" {
		base.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return pair.current() }
		return base, nil
	}
	cas, err := loadCAFile(cfg.TrustedCAFile, log)
	if err != nil {
		return nil, fmt.Errorf("--trusted-ca-file: %w", err)
	}
	base.ClientAuth = tls.VerifyClientCertIfGiven
	if cfg.ClientCertAuth {
		base.ClientAuth = tls.RequireAndVerifyClientCert
	}
	// ClientCAs is a field, not a callback: each handshake gets a config
	// with the pool and the pair read just now.
	srv := base.Clone()
	srv.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, err := pair.current()
		if err != nil {
			return nil, err
		}
		pool, err := cas.current()
		if err != nil {
			return nil, err
		}
		c := base.Clone()
		c.Certificates = []tls.Certificate{*cert}
		c.ClientCAs = pool
		return c, nil
	}
	// Set for callers that look at the top-level config (the metrics
	// listener builds its own tls.Listener from it).
	srv.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return pair.current() }
	return srv, nil
}

// UpstreamTLS builds the TLS configuration for connections to the members
// from etcd grpc-proxy's flags --cert, --key and --cacert. It returns nil
// when none is set (system roots are used for https:// endpoints).
//
// The client certificate is offered through GetClientCertificate and, with
// --cacert, the member's certificate is verified in VerifyConnection against
// the bundle read at that handshake; both survive the clones that gRPC's
// credentials and net/http make of the configuration.
func UpstreamTLS(cfg config.Config) (*tls.Config, error) {
	return UpstreamTLSLogged(cfg, zap.NewNop())
}

// UpstreamTLSLogged is UpstreamTLS with reload events logged to log.
func UpstreamTLSLogged(cfg config.Config, log *zap.Logger) (*tls.Config, error) {
	if cfg.UpstreamCert == "" && cfg.UpstreamCACert == "" && !cfg.UpstreamInsecureSkipVerify {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.UpstreamInsecureSkipVerify} //nolint:gosec // opt-in, for tests
	if cfg.UpstreamCert != "" {
		pair, err := loadKeyPairFiles(cfg.UpstreamCert, cfg.UpstreamKey, log)
		if err != nil {
			return nil, fmt.Errorf("loading --cert/--key: %w", err)
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return pair.current() }
	}
	if cfg.UpstreamCACert != "" && !cfg.UpstreamInsecureSkipVerify {
		cas, err := loadCAFile(cfg.UpstreamCACert, log)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		// RootCAs is read once per clone; verification moves to
		// VerifyConnection, which sees the bundle on disk now.
		tc = withVerifiedRoots(tc, cas, "")
		reloadingRoots.Store(tc, cas)
	}
	return tc, nil
}

// withVerifiedRoots returns a copy of tc that verifies the peer against cas
// for serverName (empty: the name the handshake announced, which is empty for
// IP addresses, so callers bind a name with ForServer).
func withVerifiedRoots(tc *tls.Config, cas *caFile, serverName string) *tls.Config {
	c := tc.Clone()
	c.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		name := serverName
		if name == "" {
			name = cs.ServerName
		}
		return verifyPeer(cs, cas, name)
	}
	return c
}

// reloadingRoots remembers the bundle behind each configuration UpstreamTLS
// returned with --cacert, so that forServer can bind a copy to one member's
// name: a handshake to an IP address announces no name, and VerifyConnection
// sees only what the handshake announced. A handful of entries per process.
var reloadingRoots sync.Map // *tls.Config → *caFile

// forServer returns tc bound to serverName: a configuration from UpstreamTLS
// with --cacert verifies the member's certificate for that name.
func forServer(tc *tls.Config, serverName string) *tls.Config {
	c := tc.Clone()
	c.ServerName = serverName
	if v, ok := reloadingRoots.Load(tc); ok {
		c = withVerifiedRoots(c, v.(*caFile), serverName)
	}
	return c
}

func verifyPeer(cs tls.ConnectionState, cas *caFile, name string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the member presented no certificate")
	}
	roots, err := cas.current()
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, DNSName: name,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}
