package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2auth"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// mdRecorder is a KV server that keeps the metadata of the last Range.
type mdRecorder struct {
	etcdserverpb.UnimplementedKVServer
	last chan metadata.MD
}

func (m *mdRecorder) Range(ctx context.Context, _ *etcdserverpb.RangeRequest) (*etcdserverpb.RangeResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	m.last <- md
	return &etcdserverpb.RangeResponse{}, nil
}

func startRecorder(t *testing.T) (*grpc.ClientConn, *mdRecorder) {
	rec := &mdRecorder{last: make(chan metadata.MD, 1)}
	return serveGRPC(t, func(s *grpc.Server) { etcdserverpb.RegisterKVServer(s, rec) }), rec
}

// TestForwardedMetadata: what a member learns from a gateway request's
// headers. etcd reads the token, Grpc-Metadata-* keys and
// grpcgateway-accept; nothing else is sent.
func TestForwardedMetadata(t *testing.T) {
	for _, tc := range []struct {
		name          string
		markAnonymous bool
		headers       map[string]string
		want          map[string]string // key → value; "" means absent
	}{
		{"token, client metadata and the gateway marker", false, map[string]string{
			"Authorization":                    "tok.123",
			"Grpc-Metadata-Hasleader":          "true",
			"Grpc-Metadata-Client-Api-Version": "3.4",
			"Accept":                           "application/json",
			"User-Agent":                       "curl/7.64",
			"Cookie":                           "session=secret",
			"Content-Type":                     "application/json",
		}, map[string]string{
			rpctypes.TokenFieldNameSwagger:       "tok.123",
			rpctypes.MetadataRequireLeaderKey:    "true",
			rpctypes.MetadataClientAPIVersionKey: "3.4",
			"grpcgateway-accept":                 "application/json",
			"grpcgateway-user-agent":             "",
			"grpcgateway-cookie":                 "",
			"grpcgateway-content-type":           "",
			rpctypes.TokenFieldNameGRPC:          "",
		}},
		{"anonymous marked when the shim has a certificate", true, map[string]string{},
			map[string]string{rpctypes.TokenFieldNameGRPC: v2auth.AnonymousToken, rpctypes.TokenFieldNameSwagger: ""}},
		{"a client's own token is not marked", true, map[string]string{"Authorization": "tok.9"},
			map[string]string{rpctypes.TokenFieldNameGRPC: "", rpctypes.TokenFieldNameSwagger: "tok.9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, rec := startRecorder(t)
			g, err := New(Options{LegacyPrefixes: []string{"/v3beta"}, LegacyMode: "rewrite", MaxRequestBytes: 1 << 20, MarkAnonymous: tc.markAnonymous}, cc)
			if err != nil {
				t.Fatal(err)
			}
			for _, prefix := range []string{"/v3beta", "/v3"} {
				r := httptest.NewRequest(http.MethodPost, prefix+"/kv/range", strings.NewReader(`{"key":"Zm9v"}`))
				for k, v := range tc.headers {
					r.Header.Set(k, v)
				}
				w := httptest.NewRecorder()
				g.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					t.Fatalf("%s: %d %s", prefix, w.Code, w.Body)
				}
				md := <-rec.last
				for k, v := range tc.want {
					got := strings.Join(md.Get(k), ",")
					if got != v {
						t.Errorf("%s: metadata %q = %q, want %q (all: %v)", prefix, k, got, v, md)
					}
				}
			}
		})
	}
}
