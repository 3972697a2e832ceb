package testnet

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestServe: every connection gets its own handler, so a second client is
// answered while the first is still open, and the listener is closed when
// the test ends.
func TestServe(t *testing.T) {
	var ln net.Listener
	t.Run("serve", func(t *testing.T) {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		Serve(t, ln, func(c net.Conn) {
			defer c.Close()
			_, _ = io.Copy(c, c)
		})
		for _, msg := range []string{"first", "second"} {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
				t.Fatalf("echo of %q: %q %v", msg, buf, err)
			}
		}
	})
	if _, err := ln.Accept(); err == nil {
		t.Fatal("the listener is still open after the test ended")
	}
}
