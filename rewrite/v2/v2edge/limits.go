package v2edge

import (
	"context"
	"net/http"
	"time"

	"github.com/etcdshim/etcdshim/internal/reqbody"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// Limits bound one v2 request. The shim passes one value from its config
// (--v2-request-timeout, --max-request-bytes) to every v2 handler, as 3.4
// gives its keys, members and auth handlers one request timeout.
type Limits struct {
	// Timeout bounds one request's calls to the member: a write without
	// quorum, or a member change, fails after it.
	Timeout time.Duration
	// MaxRequestBytes bounds a request body.
	MaxRequestBytes int64
}

// DefaultMaxRequestBytes is the body limit of a handler built without
// config: room for the base64 of etcd's 1.5 MiB --max-request-bytes.
const DefaultMaxRequestBytes = 3 << 20

// OrDefaults is l with its zero fields set: the timeout to
// v2store.DefaultTimeout, the body limit to DefaultMaxRequestBytes. For
// handlers built without the shim's config (tests, tools).
func (l Limits) OrDefaults() Limits {
	if l.Timeout <= 0 {
		l.Timeout = v2store.DefaultTimeout
	}
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = DefaultMaxRequestBytes
	}
	return l
}

// Bound returns ctx ending after the timeout at the latest.
func (l Limits) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.Timeout)
}

// DeclaresTooMuch reports a request whose Content-Length is over the body
// limit: it is refused before anything is read or decoded.
func (l Limits) DeclaresTooMuch(r *http.Request) bool {
	return r.ContentLength > l.MaxRequestBytes
}

// ReadBody returns r's body, read whole within the body limit before
// anything decodes it; reqbody.ErrTooLarge when it is longer.
func (l Limits) ReadBody(r *http.Request) ([]byte, error) {
	return reqbody.Read(r, l.MaxRequestBytes)
}
