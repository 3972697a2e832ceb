package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The golden files hold etcd 3.4's gateway JSON (docs/gateway.md): proto
// field names, 64-bit integers as strings, zero values left out, bytes in
// base64, compact; errors on the legacy prefixes as
// {"error":msg,"message":msg,"code":n} with grpc-gateway v1's statuses.

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

var (
	testHeader = &pb.ResponseHeader{ClusterId: 14841639068965178418, MemberId: 10276657743932975437, Revision: 9, RaftTerm: 2}
	// kvFull has every field; kvZero only a key (a 3.4 range shows no
	// version, value or lease for it); kvBinary needs base64 padding and
	// characters JSON would escape.
	kvFull   = &mvccpb.KeyValue{Key: []byte("foo"), CreateRevision: 2, ModRevision: 9, Version: 3, Value: []byte("bar"), Lease: 7587872370117386251}
	kvZero   = &mvccpb.KeyValue{Key: []byte("k")}
	kvBinary = &mvccpb.KeyValue{Key: []byte("a/<&>"), CreateRevision: 4, ModRevision: 4, Version: 1, Value: []byte{0, 0xff, '"', '\n'}}
)

// TestJSONShape marshals messages as etcd's handlers hand them to the
// marshaler (gogo messages wrapped as protobuf v2).
func TestJSONShape(t *testing.T) {
	m := newMarshaler()
	for _, c := range []struct {
		name string
		msg  protoadapt.MessageV1
	}{
		{"range-response", &pb.RangeResponse{Header: testHeader, Kvs: []*mvccpb.KeyValue{kvFull, kvZero, kvBinary}, More: true, Count: 3}},
		{"range-response-empty", &pb.RangeResponse{Header: testHeader}},
		{"put-response", &pb.PutResponse{Header: testHeader, PrevKv: kvFull}},
		{"watch-response", &pb.WatchResponse{Header: testHeader, WatchId: 1, Events: []*mvccpb.Event{
			{Type: mvccpb.PUT, Kv: kvFull},
			{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("foo"), ModRevision: 10}, PrevKv: kvFull},
		}}},
		{"txn-response", &pb.TxnResponse{Header: testHeader, Succeeded: true, Responses: []*pb.ResponseOp{
			{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Header: testHeader, Kvs: []*mvccpb.KeyValue{kvFull}, Count: 1}}},
			{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: testHeader}}},
		}}},
		{"lease-grant-response", &pb.LeaseGrantResponse{Header: testHeader, ID: 7587872370117386251, TTL: 60}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := protoadapt.MessageV2Of(c.msg)
			got, err := m.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			checkShape(t, got)
			// Byte-stable: the same message always encodes the same way.
			for i := 0; i < 20; i++ {
				again, err := m.Marshal(protoadapt.MessageV2Of(c.msg))
				if err != nil || !bytes.Equal(again, got) {
					t.Fatalf("encoding %d differs: %s", i, again)
				}
			}
			checkGolden(t, "marshal-"+c.name, append(got, '\n'))
		})
	}
}

// camel matches lowerCamelCase names such as createRevision; proto names
// are snake_case (create_revision) or, for a few fields, upper case (ID, TTL).
var camel = regexp.MustCompile(`^[a-z]+[A-Z]`)

// checkShape holds what the golden files show to the rules, so a golden
// file rewritten with -update cannot bless a change of shape: valid and
// compact JSON, proto field names, 64-bit integers as strings, no zero
// values.
func checkShape(t *testing.T, b []byte) {
	t.Helper()
	for _, p := range shapeProblems(b) {
		t.Error(p)
	}
}

func shapeProblems(b []byte) []string {
	var probs []string
	var compacted bytes.Buffer
	if err := json.Compact(&compacted, b); err != nil {
		return []string{fmt.Sprintf("invalid JSON %s: %v", b, err)}
	}
	if !bytes.Equal(compacted.Bytes(), b) {
		probs = append(probs, fmt.Sprintf("not compact: %s", b))
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return append(probs, err.Error())
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if camel.MatchString(k) {
					probs = append(probs, fmt.Sprintf("%s.%s: a JSON (lowerCamel) name, not the proto name", path, k))
				}
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case json.Number:
			probs = append(probs, fmt.Sprintf("%s = %s: numbers are strings (int64) or enum names here", path, x))
		case string:
			if x == "" || x == "0" {
				probs = append(probs, fmt.Sprintf("%s = %q: zero values are left out", path, x))
			}
		case bool:
			if !x {
				probs = append(probs, fmt.Sprintf("%s = false: zero values are left out", path))
			}
		}
	}
	walk("", v)
	return probs
}

// TestShapeProblems: the shape check catches each way the JSON could drift.
func TestShapeProblems(t *testing.T) {
	for _, c := range []struct{ name, in string }{
		{"json names", `{"kvs":[{"createRevision":"2"}]}`},
		{"int64 as number", `{"header":{"revision":9}}`},
		{"zero string", `{"count":"0"}`},
		{"empty bytes", `{"value":""}`},
		{"false", `{"more":false}`},
		{"spaces", `{"key": "Zm9v"}`},
		{"invalid", `{"key":`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(shapeProblems([]byte(c.in))) == 0 {
				t.Errorf("%s passes the shape check", c.in)
			}
		})
	}
	if p := shapeProblems([]byte(`{"ID":"1","TTL":"60","raft_term":"2","more":true}`)); len(p) != 0 {
		t.Errorf("proto names flagged: %q", p)
	}
}

// fakeEtcd answers the gateway's gRPC calls: Range returns a canned answer
// for "foo" and, for "err/<i>", upstreamErrors[i]; Watch sends a created
// message and two event messages, then ends.
type fakeEtcd struct {
	pb.UnimplementedKVServer
	pb.UnimplementedWatchServer
}

func (*fakeEtcd) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if i, ok := strings.CutPrefix(string(r.Key), "err/"); ok {
		n, _ := strconv.Atoi(i)
		return nil, upstreamErrors[n].err
	}
	return &pb.RangeResponse{Header: testHeader, Kvs: []*mvccpb.KeyValue{kvFull, kvZero}, Count: 2}, nil
}

func (*fakeEtcd) Watch(s pb.Watch_WatchServer) error {
	req, err := s.Recv()
	if err != nil {
		return err
	}
	cr := req.GetCreateRequest()
	if cr == nil {
		return status.Error(codes.InvalidArgument, "expected a create request")
	}
	for _, r := range []*pb.WatchResponse{
		{Header: testHeader, Created: true},
		{Header: testHeader, Events: []*mvccpb.Event{{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: cr.Key, CreateRevision: 10, ModRevision: 10, Version: 1, Value: []byte("v")}}}},
		{Header: testHeader, Events: []*mvccpb.Event{{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: cr.Key, ModRevision: 11}}}},
	} {
		if err := s.Send(r); err != nil {
			return err
		}
	}
	return nil
}

// upstreamErrors are errors etcd 3.6+ members answer, with the status and
// body etcd 3.4's /v3beta gave for them (grpc-gateway v1:
// runtime.HTTPStatusFromCode, errorBody {error, message, code}).
var upstreamErrors = []struct {
	err        error
	wantStatus int
}{
	{rpctypes.ErrGRPCCompacted, 400},        // OutOfRange
	{rpctypes.ErrGRPCFutureRev, 400},        // OutOfRange
	{rpctypes.ErrGRPCKeyNotFound, 400},      // InvalidArgument
	{rpctypes.ErrGRPCPermissionDenied, 403}, // PermissionDenied
	{rpctypes.ErrGRPCInvalidAuthToken, 401}, // Unauthenticated
	{rpctypes.ErrGRPCAuthNotEnabled, 412},   // FailedPrecondition (3.6's gateway: 400)
	{rpctypes.ErrGRPCLeaseNotFound, 404},    // NotFound
	{rpctypes.ErrGRPCMemberExist, 412},      // FailedPrecondition
	{rpctypes.ErrGRPCNoSpace, 429},          // ResourceExhausted
	{rpctypes.ErrGRPCNoLeader, 503},         // Unavailable
	{rpctypes.ErrGRPCNotCapable, 412},       // FailedPrecondition
	{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), 504},
	{status.Error(codes.Internal, "internal"), 500},
	{status.Error(codes.Unimplemented, "unknown method"), 501},
	{status.Error(codes.Unknown, "unknown"), 500},
	{status.Error(codes.Aborted, "aborted"), 409},
	{status.Error(codes.AlreadyExists, "exists"), 409},
	{status.Error(codes.Canceled, "context canceled"), 408},
	{status.Error(codes.DataLoss, "data loss"), 500},
}

func startFake(t testing.TB) *grpc.ClientConn {
	f := &fakeEtcd{}
	return serveGRPC(t, func(s *grpc.Server) {
		pb.RegisterKVServer(s, f)
		pb.RegisterWatchServer(s, f)
	})
}

// serveGRPC starts a gRPC server with the services register adds and
// returns a connection to it; both end with the test.
func serveGRPC(t testing.TB, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	addr := etcdtest.ServeGRPC(t, register)
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func serve(g http.Handler, method, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, r)
	return rec
}

func b64(s string) string { b, _ := json.Marshal([]byte(s)); return string(b) }

// TestGatewayShape goes through the gateway's handlers to a fake member:
// answers, a watch stream and errors on /v3beta (3.4's shapes) and /v3.
func TestGatewayShape(t *testing.T) {
	g, err := New(Options{LegacyPrefixes: []string{"/v3beta", "/v3alpha"}, LegacyMode: "rewrite", MaxRequestBytes: 1 << 20}, startFake(t))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("range", func(t *testing.T) {
		var bodies [][]byte
		for _, p := range []string{"/v3beta", "/v3alpha", "/v3"} {
			rec := serve(g, http.MethodPost, p+"/kv/range", `{"key":`+b64("foo")+`}`)
			if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Errorf("%s: %d %q", p, rec.Code, rec.Header().Get("Content-Type"))
			}
			checkShape(t, rec.Body.Bytes())
			bodies = append(bodies, rec.Body.Bytes())
		}
		if !bytes.Equal(bodies[0], bodies[1]) || !bytes.Equal(bodies[0], bodies[2]) {
			t.Errorf("the prefixes answer differently:\n%s\n%s\n%s", bodies[0], bodies[1], bodies[2])
		}
		checkGolden(t, "gateway-range", append(bodies[0], '\n'))
	})

	t.Run("watch stream", func(t *testing.T) {
		rec := serve(g, http.MethodPost, "/v3beta/watch", `{"create_request":{"key":`+b64("foo")+`}}`)
		if rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		lines := strings.Split(strings.TrimSuffix(rec.Body.String(), "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("want one line per message, got %q", rec.Body.String())
		}
		for _, l := range lines {
			var msg struct {
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal([]byte(l), &msg); err != nil || msg.Result == nil {
				t.Errorf("line %s is not {\"result\":…}: %v", l, err)
				continue
			}
			checkShape(t, msg.Result)
		}
		checkGolden(t, "gateway-watch", rec.Body.Bytes())
	})

	t.Run("errors", func(t *testing.T) {
		var out bytes.Buffer
		for i, e := range upstreamErrors {
			st := status.Convert(e.err)
			body := `{"key":` + b64(fmt.Sprintf("err/%d", i)) + `}`
			legacy := serve(g, http.MethodPost, "/v3beta/kv/range", body)
			v3 := serve(g, http.MethodPost, "/v3/kv/range", body)
			if legacy.Code != e.wantStatus {
				t.Errorf("%v: /v3beta answers %d, 3.4 answered %d", e.err, legacy.Code, e.wantStatus)
			}
			wantBody, _ := json.Marshal(map[string]any{"error": st.Message(), "message": st.Message(), "code": int(st.Code())})
			var gotBody, want any
			_ = json.Unmarshal(wantBody, &want)
			if err := json.Unmarshal(legacy.Body.Bytes(), &gotBody); err != nil || fmt.Sprint(gotBody) != fmt.Sprint(want) {
				t.Errorf("%v: /v3beta body %s, want %s", e.err, legacy.Body, wantBody)
			}
			if ct := legacy.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("%v: Content-Type %q", e.err, ct)
			}
			fmt.Fprintf(&out, "%s (%s)\n/v3beta %d %s\n/v3     %d %s\n\n", st.Message(), st.Code(), legacy.Code, legacy.Body, v3.Code, v3.Body)
		}
		checkGolden(t, "gateway-errors", out.Bytes())
	})

	t.Run("routing", func(t *testing.T) {
		var out bytes.Buffer
		for _, c := range []struct {
			method, path string
			want         int
		}{
			{http.MethodPost, "/v3beta/kv/nope", 404},
			{http.MethodGet, "/v3beta/kv/range", 405},
			{http.MethodPost, "/v3alpha/nope", 404},
			{http.MethodGet, "/v3alpha/kv/range", 405},
			{http.MethodPost, "/v3gamma/kv/range", 404},
		} {
			rec := serve(g, c.method, c.path, `{}`)
			if rec.Code != c.want {
				t.Errorf("%s %s: %d, want %d", c.method, c.path, rec.Code, c.want)
			}
			fmt.Fprintf(&out, "%s %s\n%d %s %q\n\n", c.method, c.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		checkGolden(t, "gateway-routing", out.Bytes())
	})
}
