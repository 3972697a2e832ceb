package main

import (
	"crypto/tls"

	"github.com/etcdshim/etcdshim/upstream"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
)

// upstreamTLSFlags are the proxy's TLS flags towards members (etcd
// grpc-proxy's names) for the commands that talk to members themselves, so
// that they mean the same everywhere.
type upstreamTLSFlags struct {
	Cert, Key, CACert  string
	InsecureSkipVerify bool
}

// register adds --cert, --key, --cacert and --insecure-skip-tls-verify;
// members names whom they reach in the help texts.
func (f *upstreamTLSFlags) register(fs *pflag.FlagSet, members string) {
	fs.StringVar(&f.Cert, "cert", "", "client certificate for "+members)
	fs.StringVar(&f.Key, "key", "", "client key for "+members)
	fs.StringVar(&f.CACert, "cacert", "", "CA bundle that verifies the certificates of "+members)
	fs.BoolVar(&f.InsecureSkipVerify, "insecure-skip-tls-verify", false, "do not verify the certificates of "+members+" (testing only)")
}

// paired is false when only one of --cert and --key is given.
func (f upstreamTLSFlags) paired() bool { return (f.Cert == "") == (f.Key == "") }

// config is the TLS configuration the shim builds from the same flags.
func (f upstreamTLSFlags) config() (*tls.Config, error) {
	return upstream.ClientTLS(upstream.TLSFiles(f), zap.NewNop())
}
