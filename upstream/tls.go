package upstream

import (
	"crypto/tls"
	"fmt"
	"sync"

	"github.com/etcdshim/etcdshim/internal/tlsfiles"
	"go.uber.org/zap"
)

// TLSFiles are the TLS settings towards the members, with etcd grpc-proxy's
// flag names.
type TLSFiles struct {
	// Cert and Key are the client certificate the shim presents (--cert,
	// --key).
	Cert, Key string
	// CACert verifies the members' certificates (--cacert; empty: the
	// system roots).
	CACert string
	// InsecureSkipVerify does not verify them (tests only).
	InsecureSkipVerify bool
}

// ClientTLS builds the TLS configuration for connections to the members. It
// returns nil when nothing is set (system roots are used for https://
// endpoints). Reload events are logged to log.
//
// The client certificate is offered through GetClientCertificate and, with
// CACert, the member's certificate is verified in VerifyConnection against
// the bundle read at that handshake; both survive the clones that gRPC's
// credentials and net/http make of the configuration.
func ClientTLS(f TLSFiles, log *zap.Logger) (*tls.Config, error) {
	if f.Cert == "" && f.CACert == "" && !f.InsecureSkipVerify {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.InsecureSkipVerify} //nolint:gosec // opt-in, for tests
	if f.Cert != "" {
		pair, err := tlsfiles.LoadKeyPair(f.Cert, f.Key, log)
		if err != nil {
			return nil, fmt.Errorf("loading --cert/--key: %w", err)
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return pair.Current() }
	}
	if f.CACert != "" && !f.InsecureSkipVerify {
		cas, err := tlsfiles.LoadCABundle(f.CACert, log)
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
// IP addresses, so callers bind a name with forServer).
func withVerifiedRoots(tc *tls.Config, cas *tlsfiles.CABundle, serverName string) *tls.Config {
	c := tc.Clone()
	c.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		name := serverName
		if name == "" {
			name = cs.ServerName
		}
		return cas.VerifyServer(cs, name)
	}
	return c
}

// reloadingRoots remembers the bundle behind each configuration ClientTLS
// returned with CACert, so that forServer can bind a copy to one member's
// name: a handshake to an IP address announces no name, and VerifyConnection
// sees only what the handshake announced. A handful of entries per process.
var reloadingRoots sync.Map // *tls.Config → *tlsfiles.CABundle

// forServer returns tc bound to serverName: a configuration from ClientTLS
// with CACert verifies the member's certificate for that name.
func forServer(tc *tls.Config, serverName string) *tls.Config {
	c := tc.Clone()
	c.ServerName = serverName
	if v, ok := reloadingRoots.Load(tc); ok {
		c = withVerifiedRoots(c, v.(*tlsfiles.CABundle), serverName)
	}
	return c
}
