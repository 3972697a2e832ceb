// Package testpki is the certificate authority of the tests: CAs that issue
// certificates for 127.0.0.1 and localhost, and the replacement of a file on
// disk the way Kubernetes and cert-manager rotate one. Unit tests and the
// e2e harness share it; nothing in the shim imports it.
package testpki
