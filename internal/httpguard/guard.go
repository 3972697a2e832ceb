package httpguard

import (
	"fmt"
	"net"
	"net/http"
)

// Policy is one setting of --host-whitelist and --cors. It is immutable and
// safe for concurrent use.
type Policy struct {
	hosts   map[string]struct{}
	origins map[string]struct{}
	secure  func(*http.Request) bool
}

// New builds a policy from --host-whitelist and --cors. As in etcd 3.4, an
// empty list or one holding "*" allows everything.
func New(hostWhitelist, cors []string) *Policy {
	return &Policy{hosts: set(hostWhitelist), origins: set(cors), secure: func(r *http.Request) bool { return r.TLS != nil }}
}

// WithSecure returns a copy of p that asks secure whether a request came
// over TLS (the shim terminates TLS itself, so r.TLS is not always set).
func (p *Policy) WithSecure(secure func(*http.Request) bool) *Policy {
	q := *p
	q.secure = secure
	return &q
}

func set(values []string) map[string]struct{} {
	m := make(map[string]struct{}, len(values))
	for _, v := range values {
		m[v] = struct{}{}
	}
	return m
}

func allows(m map[string]struct{}, v string) bool {
	if len(m) == 0 {
		return true
	}
	if _, ok := m["*"]; ok {
		return true
	}
	_, ok := m[v]
	return ok
}

// hostname is the request's Host without its port, as etcd compares it.
func hostname(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		return h
	}
	return r.Host
}

// HostAllowed reports whether r may be answered: it came over TLS, or its
// Host names a whitelisted host.
func (p *Policy) HostAllowed(r *http.Request) bool {
	return p.secure(r) || allows(p.hosts, hostname(r))
}

// OriginAllowed reports whether a browser at origin may read the answers.
func (p *Policy) OriginAllowed(origin string) bool { return allows(p.origins, origin) }

// Wrap answers as etcd 3.4's client handler does before its routes: 421
// for a plain-HTTP request with an unlisted Host, the CORS headers for an
// allowed origin ("*" when every origin is allowed), and 200 to any
// OPTIONS request.
func (p *Policy) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.HostAllowed(r) {
			http.Error(w, refusedHost(hostname(r)), http.StatusMisdirectedRequest)
			return
		}
		if allows(p.origins, "*") {
			setCORS(w.Header(), "*")
		} else if o := r.Header.Get("Origin"); p.OriginAllowed(o) {
			setCORS(w.Header(), o)
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// WrapHostOnly applies the Host check alone: for the shim's debug pages,
// which 3.4 does not have and which no browser page should read.
func (p *Policy) WrapHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.HostAllowed(r) {
			http.Error(w, refusedHost(hostname(r)), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func setCORS(h http.Header, origin string) {
	// The keys are canonical; one slice holds the three values, shared by
	// every answer for any origin (header values are only read once set).
	v := anyOrigin
	if origin != "*" {
		v = []string{anyOrigin[0], origin, anyOrigin[2]}
	}
	h["Access-Control-Allow-Methods"] = v[0:1:1]
	h["Access-Control-Allow-Origin"] = v[1:2:2]
	h["Access-Control-Allow-Headers"] = v[2:3:3]
}

var anyOrigin = []string{"POST, GET, OPTIONS, PUT, DELETE", "*", "accept, content-type, authorization"}

// refusedHost is the body etcd 3.4 answers a refused Host with, so clients
// and operators see the same advice through the shim.
func refusedHost(host string) string {
	return fmt.Sprintf(`
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist %q

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).
`, host)
}
