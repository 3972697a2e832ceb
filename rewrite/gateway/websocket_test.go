package gateway

import (
	"bufio"
	"net/http"
	"net/http/httptest"
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
