package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/etcdshim/etcdshim/config"
)

// ServerTLS builds the client-facing TLS configuration from etcd's flags:
// --cert-file/--key-file, --trusted-ca-file and --client-cert-auth.
func ServerTLS(cfg config.Config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading --cert-file/--key-file: %w", err)
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if cfg.TrustedCAFile != "" {
		pool, err := loadCAs(cfg.TrustedCAFile)
		if err != nil {
			return nil, fmt.Errorf("--trusted-ca-file: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if cfg.ClientCertAuth {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}

// UpstreamTLS builds the TLS configuration for connections to the members
// from etcd grpc-proxy's flags --cert, --key and --cacert. It returns nil
// when none is set (system roots are used for https:// endpoints).
func UpstreamTLS(cfg config.Config) (*tls.Config, error) {
	if cfg.UpstreamCert == "" && cfg.UpstreamCACert == "" && !cfg.UpstreamInsecureSkipVerify {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.UpstreamInsecureSkipVerify} //nolint:gosec // opt-in, for tests
	if cfg.UpstreamCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.UpstreamCert, cfg.UpstreamKey)
		if err != nil {
			return nil, fmt.Errorf("loading --cert/--key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if cfg.UpstreamCACert != "" {
		pool, err := loadCAs(cfg.UpstreamCACert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
