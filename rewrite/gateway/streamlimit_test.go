package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

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
