package testnet

import (
	"net"
	"testing"
)

// Serve accepts connections on ln until the test ends, when it closes ln,
// and hands each one to handle in a goroutine of its own; handle owns the
// connection and closes it.
func Serve(tb testing.TB, ln net.Listener, handle func(net.Conn)) {
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}
