package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// TestTLS serves clients over TLS (with and without client-cert auth) and
// reaches a member that itself requires client certificates.
func TestTLS(t *testing.T) {
	e2eParallel(t)
	pki := harness.NewTestPKI(t, t.TempDir())
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.6", Size: 1, TLS: pki.RequiringClientCerts()})
	for _, mtls := range []bool{false, true} {
		name := map[bool]string{false: "server-tls", true: "client-cert-auth"}[mtls]
		t.Run(name, func(t *testing.T) {
			shimTLS := *pki
			shimTLS.ClientCertAuth = mtls
			shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs(), TLS: &shimTLS})
			if !strings.HasPrefix(shim.URL, "https://") {
				t.Fatalf("shim URL %s", shim.URL)
			}
			withCert := []string{"--endpoints", shim.URL, "--cacert", pki.CA, "--cert", pki.ClientCert, "--key", pki.ClientKey}
			out, err := harness.Etcdctl(t, []string{"ETCDCTL_API=3"}, append(withCert, "put", "tls-"+name, "ok")...)
			if err != nil || !strings.Contains(out, "OK") {
				t.Fatalf("put over TLS through the shim to a TLS member: %v %s", err, out)
			}
			out, err = harness.Etcdctl(t, []string{"ETCDCTL_API=3"}, append(withCert, "get", "tls-"+name, "--print-value-only")...)
			if err != nil || strings.TrimSpace(out) != "ok" {
				t.Fatalf("get: %v %s", err, out)
			}
			noCert := []string{"--endpoints", shim.URL, "--cacert", pki.CA, "--dial-timeout", "2s", "--command-timeout", "3s"}
			out, err = harness.Etcdctl(t, []string{"ETCDCTL_API=3"}, append(noCert, "get", "tls-"+name)...)
			if mtls && err == nil {
				t.Fatalf("a client without a certificate was served with --client-cert-auth: %s", out)
			}
			if !mtls && err != nil {
				t.Fatalf("server-only TLS refused a client without a certificate: %v %s", err, out)
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientConfig()}, Timeout: 5 * time.Second}
			if code := getStatus(t, client, shim.URL+"/health"); code != http.StatusOK {
				t.Fatalf("/health over TLS: %d", code)
			}
		})
	}
}
