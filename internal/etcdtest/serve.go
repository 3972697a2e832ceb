package etcdtest

import (
	"net"
	"testing"

	"google.golang.org/grpc"
)

// ServeGRPC serves the gRPC services register adds (a fake member's) on a
// free loopback port until the test ends, and returns the address.
func ServeGRPC(tb testing.TB, register func(*grpc.Server)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// Upstream offers a connection (Start's, or one to a fake member) where the
// shim's packages take their upstream, which in the shim is an
// upstream.Pool: anything with a ClientConn method.
type Upstream struct{ Conn grpc.ClientConnInterface }

// ClientConn returns u.Conn.
func (u Upstream) ClientConn() grpc.ClientConnInterface { return u.Conn }
