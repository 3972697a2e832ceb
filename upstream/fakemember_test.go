package upstream

import (
	"net"
	"testing"

	"google.golang.org/grpc"
)

// serveFake serves the gRPC services register adds, as a fake member on a
// free loopback port, until the test ends; it returns the address.
func serveFake(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}
