package proxy

import (
	"crypto/tls"
	"fmt"

	"github.com/etcdshim/etcdshim/internal/tlsfiles"
	"go.uber.org/zap"
)

// TLSFiles are the client-facing TLS settings, with etcd's flag names.
type TLSFiles struct {
	// CertFile and KeyFile are the shim's certificate (--cert-file,
	// --key-file).
	CertFile, KeyFile string
	// TrustedCAFile verifies client certificates (--trusted-ca-file).
	TrustedCAFile string
	// ClientCertAuth requires a client certificate (--client-cert-auth).
	ClientCertAuth bool
}

// ServerTLS builds the client-facing TLS configuration. Every handshake sees
// the files as they are on disk then (package tlsfiles); reload events are
// logged to log.
func ServerTLS(f TLSFiles, log *zap.Logger) (*tls.Config, error) {
	pair, err := tlsfiles.LoadKeyPair(f.CertFile, f.KeyFile, log)
	if err != nil {
		return nil, fmt.Errorf("loading --cert-file/--key-file: %w", err)
	}
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
	}
	if f.TrustedCAFile == "" {
		base.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return pair.Current() }
		return base, nil
	}
	cas, err := tlsfiles.LoadCABundle(f.TrustedCAFile, log)
	if err != nil {
		return nil, fmt.Errorf("--trusted-ca-file: %w", err)
	}
	base.ClientAuth = tls.VerifyClientCertIfGiven
	if f.ClientCertAuth {
		base.ClientAuth = tls.RequireAndVerifyClientCert
	}
	// ClientCAs is a field, not a callback: each handshake gets a config
	// with the pool and the pair read just now.
	srv := base.Clone()
	srv.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, err := pair.Current()
		if err != nil {
			return nil, err
		}
		pool, err := cas.Current()
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
	srv.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return pair.Current() }
	return srv, nil
}
