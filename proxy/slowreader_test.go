package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/waitfor"
)

// TestSlowReaderIsCut: a client that requests a 64 MiB answer and never
// reads it is cut once a write has waited --response-write-timeout, so the
// handler returns and its memory goes; a long poll that waits longer than
// the timeout before it writes is not cut.
func TestSlowReaderIsCut(t *testing.T) {
	done := make(chan error, 1)
	waited := make(chan error, 1)
	h := Handlers{V2: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/keys/poll" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			time.Sleep(2 * time.Second) // longer than the timeout, writing nothing
			_, err := w.Write([]byte("event\n"))
			waited <- err
			return
		}
		chunk := make([]byte, 1<<20)
		var err error
		for i := 0; i < 64 && err == nil; i++ {
			_, err = w.Write(chunk)
		}
		done <- err
	})}
	port := freeTestPort(t)
	opts := testOptions(fmt.Sprintf("http://127.0.0.1:%d", port))
	opts.ResponseWriteTimeout = 500 * time.Millisecond
	serve(t, idleServer(t, opts, "http://127.0.0.1:1", h))
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(c, "GET /v2/keys/big HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("64 MiB were written to a client that reads nothing")
		}
	case <-time.After(60 * time.Second): // a ceiling, not a timing
		t.Fatal("the handler is still blocked writing to a client that does not read")
	}

	resp, err := http.Get("http://" + addr + "/v2/keys/poll")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if err := waitfor.Recv(t, waited, hangGuard, "the long poll's handler"); err != nil || strings.TrimSpace(line) != "event" {
		t.Fatalf("a long poll was cut: %v %q", err, line)
	}
}
