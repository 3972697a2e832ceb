package proxy

import (
	"net/url"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/upstream"
	"go.uber.org/zap/zaptest"
)

// idleServer builds the front with opts and h on a pool of one member that
// is never probed again after the first (HealthInterval an hour): the
// tests that use it answer from h and need no member behind the pool.
func idleServer(t *testing.T, opts Options, member string, h Handlers) *Server {
	t.Helper()
	u, err := url.Parse(member)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := upstream.NewPool(upstream.Options{Endpoints: []*url.URL{u}, DialTimeout: time.Second,
		HealthInterval: time.Hour, HealthTimeout: time.Second, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	srv, err := New(opts, pool, h, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return srv
}
