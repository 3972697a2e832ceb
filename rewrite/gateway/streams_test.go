package gateway

// The gateway's streaming routes (watch, lease keep-alive, election
// observe) over websockets and POST streams: how a stream ends, which
// origins may open a socket, and what one request on a stream may cost
// (wslimit.go, streamlimit.go).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/rewrite/gateway/gatewaytest"
	"github.com/gorilla/websocket"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// goneWatch answers every create request with a created message and then
// ends the stream as a member that is going away does (Unavailable).
type goneWatch struct{ pb.UnimplementedWatchServer }

func (goneWatch) Watch(s pb.Watch_WatchServer) error {
	req, err := s.Recv()
	if err != nil {
		return err
	}
	if err := s.Send(&pb.WatchResponse{Header: testHeader, Created: true}); err != nil {
		return err
	}
	if string(req.GetCreateRequest().GetKey()) == "leak" {
		// What grpc-go says when the shim's connection to a member breaks.
		return status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 10.1.2.3:2379: connect: connection refused"`)
	}
	return status.Error(codes.Unavailable, "member going away")
}

func goneGateway(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	cc := serveGRPC(t, func(s *grpc.Server) { pb.RegisterWatchServer(s, goneWatch{}) })
	opts.LegacyPrefixes, opts.LegacyMode = []string{"/v3beta", "/v3alpha"}, "rewrite"
	g, err := New(opts, cc)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv
}

// The end of a stream on an upstream error, over a websocket and over a
// plain POST stream: 3.4's error line on the legacy prefixes (grpc-gateway
// v1's StreamError), the current gateway's on /v3; then the socket closes
// without a close frame, as the member's gateway closes it.
func TestStreamEndsOnUpstreamError(t *testing.T) {
	srv := goneGateway(t, Options{})
	const created = `{"result":{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"9","raft_term":"2"},"created":true}}`
	for _, c := range []struct{ prefix, end string }{
		{"/v3beta", `{"error":{"grpc_code":14,"http_code":503,"message":"member going away","http_status":"Service Unavailable"}}`},
		{"/v3alpha", `{"error":{"grpc_code":14,"http_code":503,"message":"member going away","http_status":"Service Unavailable"}}`},
		{"/v3", `{"error":{"code":14,"message":"member going away"}}`},
	} {
		t.Run("websocket"+c.prefix, func(t *testing.T) {
			conn, resp, err := websocket.DefaultDialer.Dial(gatewaytest.WatchURL(srv.URL, c.prefix), nil)
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, resp)
			}
			defer conn.Close()
			if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"create_request":{"key":"Zm9v"}}`)); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			var frames []string
			for {
				_, b, err := conn.ReadMessage()
				if err != nil {
					if !websocket.IsCloseError(err, websocket.CloseAbnormalClosure) {
						t.Errorf("socket ended with %v, want an abnormal closure (no close frame)", err)
					}
					break
				}
				frames = append(frames, string(b))
			}
			if want := []string{created, c.end}; strings.Join(frames, "\n") != strings.Join(want, "\n") {
				t.Errorf("frames:\n%s\nwant:\n%s", strings.Join(frames, "\n"), strings.Join(want, "\n"))
			}
		})
		t.Run("post"+c.prefix, func(t *testing.T) {
			resp, err := http.Post(srv.URL+c.prefix+"/watch", "application/json", strings.NewReader(`{"create_request":{"key":"Zm9v"}}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var lines []string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			if want := []string{created, c.end}; strings.Join(lines, "\n") != strings.Join(want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestStreamErrorHidesMember: a stream ended by the shim's lost connection
// says the member is unavailable without naming its address.
func TestStreamErrorHidesMember(t *testing.T) {
	srv := goneGateway(t, Options{})
	for prefix, want := range map[string]string{
		"/v3beta": `{"error":{"grpc_code":14,"http_code":503,"message":"upstream member unavailable","http_status":"Service Unavailable"}}`,
		"/v3":     `{"error":{"code":14,"message":"upstream member unavailable"}}`,
	} {
		resp, err := http.Post(srv.URL+prefix+"/watch", "application/json", strings.NewReader(`{"create_request":{"key":"bGVhaw=="}}`))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		resp.Body.Close()
		if len(lines) != 2 || lines[1] != want {
			t.Errorf("%s: %q, want the created line and %s", prefix, lines, want)
		}
	}
}

// TestWebsocketOrigin: a browser page's Origin must be allowed by --cors;
// clients that send no Origin are not browsers and pass.
func TestWebsocketOrigin(t *testing.T) {
	srv := goneGateway(t, Options{OriginAllowed: func(o string) bool { return o == "https://ui.example" }})
	for _, c := range []struct {
		prefix, origin string
		want           int
	}{
		{"/v3", "", http.StatusSwitchingProtocols},
		{"/v3", "https://ui.example", http.StatusSwitchingProtocols},
		{"/v3", "https://evil.example", http.StatusForbidden},
		{"/v3beta", "https://evil.example", http.StatusForbidden},
		{"/v3beta", "https://ui.example", http.StatusSwitchingProtocols},
	} {
		t.Run(c.prefix+" "+c.origin, func(t *testing.T) {
			h := http.Header{}
			if c.origin != "" {
				h.Set("Origin", c.origin)
			}
			if got := gatewaytest.UpgradeStatus(t, srv.URL, c.prefix, h); got != c.want {
				t.Errorf("status %d, want %d", got, c.want)
			}
		})
	}
}

// TestLegacyMalformedFirstRequest: on the legacy prefixes a malformed first
// request of a stream gets 3.4's answer (500, its error body; over a
// websocket that body as the one frame before the socket closes), where
// grpc-gateway v2 would stop reading and leave the client waiting.
func TestLegacyMalformedFirstRequest(t *testing.T) {
	srv := goneGateway(t, Options{})
	const bad = `{"error":"invalid character 'b' looking for beginning of object key string","message":"invalid character 'b' looking for beginning of object key string","code":2}`
	for _, c := range []struct{ name, body, want string }{
		{"syntax", `{bad`, bad},
		{"type", `{"create_request":{"key":5}}`, `"code":2}`},
	} {
		t.Run("post/"+c.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/v3beta/watch", "application/json", strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b := new(strings.Builder)
			_, _ = bufio.NewReader(resp.Body).WriteTo(b)
			if resp.StatusCode != http.StatusInternalServerError || !strings.HasSuffix(strings.TrimSpace(b.String()), c.want) {
				t.Errorf("%d %s, want 500 ending %s", resp.StatusCode, b, c.want)
			}
		})
	}
	t.Run("websocket", func(t *testing.T) {
		conn, _, err := websocket.DefaultDialer.Dial(gatewaytest.WatchURL(srv.URL, "/v3beta"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.WriteMessage(websocket.TextMessage, []byte(`{bad`))
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := conn.ReadMessage()
		if err != nil || string(b) != bad {
			t.Fatalf("frame %q (%v), want %s", b, err, bad)
		}
		if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseAbnormalClosure) {
			t.Errorf("after the error: %v, want the socket closed", err)
		}
	})
	t.Run("valid first request still streams", func(t *testing.T) {
		resp, err := http.Post(srv.URL+"/v3beta/watch", "application/json", strings.NewReader(`{"create_request":{"key":"Zm9v"}}`+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		if !sc.Scan() || !strings.Contains(sc.Text(), `"created":true`) {
			t.Fatalf("first line %q", sc.Text())
		}
	})
}

// frame is one client frame (masked, as clients must send them) with a
// payload of n bytes.
func frame(fin bool, opcode byte, n int) []byte {
	b := []byte{opcode}
	if fin {
		b[0] |= 0x80
	}
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 1, 2, 3, 4) // masking key
	return append(b, bytes.Repeat([]byte{'x'}, n)...)
}

func TestFrameLimit(t *testing.T) {
	const max = 1000
	const text, binaryOp, cont, ping, pong, closeOp = 1, 2, 0, 9, 10, 8
	huge := func() []byte { // a header announcing 2^63 bytes, no payload
		b := []byte{0x80 | text, 0x80 | 127}
		b = binary.BigEndian.AppendUint64(b, 1<<63)
		return append(b, 1, 2, 3, 4)
	}
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	for _, c := range []struct {
		name    string
		stream  []byte
		tooBig  bool
		atFrame int // bytes fed before the error: the refusing header's end
	}{
		{"one small text frame", frame(true, text, 10), false, 0},
		{"exactly the limit", frame(true, binaryOp, max), false, 0},
		{"one byte over, 16-bit length", frame(true, text, max+1), true, 2 + 2 + 4},
		{"2^63 announced", huge(), true, 14},
		{"fragments under the limit", join(frame(false, text, 400), frame(false, cont, 400), frame(true, cont, 200)), false, 0},
		{"fragments over the limit", join(frame(false, text, 400), frame(false, cont, 400), frame(true, cont, 201)), true, 2*(2+2+4+400) + 2 + 2 + 4},
		{"control frames inside a message do not count", join(frame(false, text, 900), frame(true, ping, 125), frame(true, pong, 125), frame(true, cont, 100)), false, 0},
		{"each message has its own limit", join(frame(true, text, 900), frame(true, text, 900), frame(false, binaryOp, 500), frame(true, cont, 500)), false, 0},
		{"a close frame after a full message", join(frame(true, text, max), frame(true, closeOp, 2)), false, 0},
	} {
		for _, chunk := range []int{1, 7, 1 << 20} {
			t.Run(c.name+"/chunks of "+strconv.Itoa(chunk), func(t *testing.T) {
				f := frameLimit{max: max}
				fed := 0
				var err error
				for p := c.stream; len(p) > 0 && err == nil; {
					n := min(chunk, len(p))
					err = f.feed(p[:n])
					fed += n
					p = p[n:]
				}
				switch {
				case c.tooBig && !errors.Is(err, errMessageTooBig):
					t.Fatalf("fed %d bytes: %v, want errMessageTooBig", fed, err)
				case !c.tooBig && err != nil:
					t.Fatalf("fed %d bytes: %v", fed, err)
				case c.tooBig && chunk == 1 && fed != c.atFrame:
					t.Fatalf("refused after %d bytes, want %d (at the header, before the payload)", fed, c.atFrame)
				}
			})
		}
	}
}

// TestWebsocketMessageLimit: grpc-websocket-proxy reads a message whole
// before it passes it on, so one client could make the shim hold any
// amount of memory with one message. A message over --max-request-bytes
// now ends the socket with 1009 before its payload is read, and the shim
// allocates nothing near the message's size; messages under it are served.
func TestWebsocketMessageLimit(t *testing.T) {
	const limit = 16 << 10
	g, err := New(Options{MaxRequestBytes: limit}, startFake(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)

	t.Run("under the limit", func(t *testing.T) {
		conn, _, err := websocket.DefaultDialer.Dial(gatewaytest.WatchURL(srv.URL, "/v3"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		gatewaytest.CreateWatch(t, conn, "a")
	})

	t.Run("64 MiB in one message", func(t *testing.T) {
		conn, _, err := websocket.DefaultDialer.Dial(gatewaytest.WatchURL(srv.URL, "/v3"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		const size = 64 << 20
		sent := gatewaytest.SendOversized(conn, size)
		if tooBig, err := gatewaytest.ClosedTooBig(conn, 30*time.Second); !tooBig {
			t.Fatalf("the socket ended with %v, want close 1009 (message too big)", err)
		}
		conn.Close()
		n := <-sent
		runtime.ReadMemStats(&after)
		// The old path held the whole message, growing it by doubling:
		// at least 64 MiB. What is left is the client's and the server's
		// buffers, and the bytes drained on close.
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
			t.Fatalf("%d bytes allocated while the client sent %d, want under 8 MiB", grew, n)
		}
		if n >= size {
			t.Fatalf("the client sent all %d bytes: the shim read the whole message", n)
		}
	})
}

// FuzzFrameLimit: whatever bytes a client sends, and however the reads
// split them, the frame follower refuses at the same byte or not at all,
// and never panics.
func FuzzFrameLimit(f *testing.F) {
	f.Add(frame(true, 1, 10), uint16(1), uint16(1000))
	f.Add(append(frame(false, 1, 400), frame(true, 0, 700)...), uint16(7), uint16(1000))
	f.Add([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, uint16(3), uint16(1000))
	f.Fuzz(func(t *testing.T, stream []byte, chunk, max uint16) {
		refusedAt := func(chunk int) int {
			fl := frameLimit{max: uint64(max)}
			for fed := 0; fed < len(stream); {
				n := min(chunk, len(stream)-fed)
				if err := fl.feed(stream[fed : fed+n]); err != nil {
					// The byte that completed the refusing header.
					one := frameLimit{max: uint64(max)}
					for i := range stream[:fed+n] {
						if one.feed(stream[i:i+1]) != nil {
							return i
						}
					}
					t.Fatalf("refused in chunks of %d but not byte by byte", chunk)
				}
				fed += n
			}
			return -1
		}
		whole, split := refusedAt(len(stream)+1), refusedAt(int(chunk%64)+1)
		if whole != split {
			t.Fatalf("refused at %d whole, at %d in chunks of %d", whole, split, chunk%64+1)
		}
	})
}

// echoLease answers every keep-alive request with its lease's ID.
type echoLease struct{ pb.UnimplementedLeaseServer }

func (*echoLease) LeaseKeepAlive(s pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&pb.LeaseKeepAliveResponse{Header: testHeader, ID: req.ID, TTL: 60}); err != nil {
			return err
		}
	}
}

// TestStreamRequestBound: --max-request-bytes bounds each request of a
// POST stream, not the stream: 3,000 keep-alives (85 KiB in all, 85 times
// the bound) are all answered, as by 3.4, where the whole body was once
// capped and the stream ended, without an error, after 35 answers. A
// request past the bound ends the stream with ResourceExhausted after the
// answers to the requests before it, in each prefix's shape.
func TestStreamRequestBound(t *testing.T) {
	const max = 1024
	cc := serveGRPC(t, func(s *grpc.Server) { pb.RegisterLeaseServer(s, &echoLease{}) })
	g, err := New(Options{MaxRequestBytes: max, LegacyPrefixes: []string{"/v3beta"}, LegacyMode: "rewrite"}, cc)
	if err != nil {
		t.Fatal(err)
	}
	keepalives := func(n int, ids ...string) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, `{"ID":"%d"}`+"\n", 1000000000000000000+i)
		}
		for _, id := range ids {
			b.WriteString(id)
		}
		return b.String()
	}
	answers := func(t *testing.T, body string, prefix string) (ok int, last string) {
		t.Helper()
		rec := serve(g, http.MethodPost, prefix+"/lease/keepalive", body)
		sc := bufio.NewScanner(rec.Body)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"result"`) {
				ok++
			} else {
				last = sc.Text()
			}
		}
		return ok, last
	}
	t.Run("many small requests", func(t *testing.T) {
		body := keepalives(3000)
		if len(body) < 64*max {
			t.Fatalf("body of %d bytes proves nothing", len(body))
		}
		for _, prefix := range []string{"/v3", "/v3beta"} {
			if ok, last := answers(t, body, prefix); ok != 3000 || last != "" {
				t.Errorf("%s: %d answers and %q, want 3000 and no error", prefix, ok, last)
			}
		}
	})
	t.Run("one request past the bound", func(t *testing.T) {
		// Over HTTP/2, as the shim serves a TLS client that is not gRPC:
		// requests and answers interleave, so the test knows which
		// answers were due before the request past the bound.
		srv := httptest.NewUnstartedServer(g)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		defer srv.Close()
		// Whitespace inside the value counts, and braces inside a string
		// do not end it.
		big := `{"ID":"7",` + strings.Repeat(" ", max) + `"x":"}}"}` + "\n"
		// A request of exactly the bound (the newline before it included)
		// passes.
		edge := `{"ID":"8"` + strings.Repeat(" ", max-len(`{"ID":"8"}`)-1) + "}\n"
		for prefix, want := range map[string]string{
			"/v3":     `{"error":{"code":8,"message":"a request in the stream is larger than 1024 bytes"}}`,
			"/v3beta": `{"error":{"grpc_code":8,"http_code":429,"message":"a request in the stream is larger than 1024 bytes","http_status":"Too Many Requests"}}`,
		} {
			pr, pw := io.Pipe()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+prefix+"/lease/keepalive", pr)
			go func() { _, _ = io.WriteString(pw, keepalives(5, edge)) }()
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			var lines []string
			for len(lines) < 6 && sc.Scan() {
				lines = append(lines, sc.Text())
			}
			go func() { _, _ = io.WriteString(pw, big+keepalives(5)) }()
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			resp.Body.Close()
			pw.Close()
			answered := 0
			for _, l := range lines {
				if strings.Contains(l, `"result"`) {
					answered++
				}
			}
			if answered != 6 || len(lines) != 7 || lines[6] != want {
				t.Errorf("%s: %d answers in %q; want 6 (the last of exactly the bound), then %s", prefix, answered, lines, want)
			}
		}
	})
}
