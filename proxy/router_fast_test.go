package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestWriteDeadlineAcrossRequests: on one keep-alive connection, the write
// deadline of an earlier answer cuts neither a later long poll that writes
// after waiting longer than --response-write-timeout, nor an answer the
// handler leaves buffered after working longer than it, nor the "100
// Continue" the server sends for a request that arrives after the
// connection sat idle longer than it (instrument no longer clears the
// deadline when a request starts: net/http does after each answer).
func TestWriteDeadlineAcrossRequests(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := Handlers{V2: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/keys/poll":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			time.Sleep(3 * timeout) // then writes its event
		case "/v2/keys/slow":
			time.Sleep(3 * timeout) // writes nothing before it returns
			w.Header().Set("X-Slow", "1")
			return
		case "/v2/keys/upload":
			b, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("reading the body: %v", err)
			}
			_, _ = fmt.Fprintf(w, "%d\n", len(b))
			return
		}
		_, _ = io.WriteString(w, "event\n")
	})}
	port := freeTestPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	opts := testOptions("http://" + addr)
	opts.ResponseWriteTimeout = timeout
	serve(t, idleServer(t, opts, "http://127.0.0.1:1", h))

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	roundTrip := func(req string) *http.Response {
		t.Helper()
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		return resp
	}
	body := func(resp *http.Response) string {
		t.Helper()
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	get := func(path string) string {
		return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr)
	}
	if got := body(roundTrip(get("/v2/keys/a"))); got != "event\n" {
		t.Fatalf("first answer %q", got)
	}
	if got := body(roundTrip(get("/v2/keys/poll"))); got != "event\n" {
		t.Fatalf("long poll %q", got)
	}
	if resp := roundTrip(get("/v2/keys/slow")); resp.Header.Get("X-Slow") != "1" {
		t.Fatalf("slow answer without its header: %v", resp.Header)
	}
	time.Sleep(2 * timeout) // idle past the deadline the slow answer left
	if _, err := fmt.Fprintf(c, "PUT /v2/keys/upload HTTP/1.1\r\nHost: %s\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", addr); err != nil {
		t.Fatal(err)
	}
	cont, err := http.ReadResponse(br, nil)
	if err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("no 100 Continue: %v %v", cont, err)
	}
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := body(resp); got != "5\n" {
		t.Fatalf("upload answer %q", got)
	}
}
