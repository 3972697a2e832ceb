package harness

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Client is a v3 client of endpoints (5 s to dial, no log of its own),
// closed when the test ends; opts change its Config (credentials, TLS, dial
// options) before it is made.
func Client(tb testing.TB, endpoints []string, opts ...func(*clientv3.Config)) *clientv3.Client {
	tb.Helper()
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// WithUser makes the client authenticate as user.
func WithUser(user, password string) func(*clientv3.Config) {
	return func(c *clientv3.Config) { c.Username, c.Password = user, password }
}
