// Package tlsfiles reads certificates, keys and CA bundles again on every new
// TLS handshake, as etcd does since 3.2: cert-manager and operators replace
// the files in place and expect no restart. Both sides of the shim use it:
// the client listeners (proxy) and the connections to the members
// (upstream).
package tlsfiles
