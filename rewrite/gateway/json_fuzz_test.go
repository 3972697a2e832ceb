package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// FuzzGatewayJSON sends arbitrary bodies to the gateway's JSON routes (on
// /v3 and the rewritten /v3beta) in front of a fake member: the answer is
// always a status below 600 with a JSON body (an answer or an error in the
// protocol's shape), never a panic.
func FuzzGatewayJSON(f *testing.F) {
	routes := []string{"/kv/range", "/kv/put", "/kv/txn", "/kv/deleterange", "/watch", "/lease/grant", "/auth/authenticate", "/kv/compaction"}
	for i := range routes {
		f.Add(uint8(i), `{"key":"Zm9v"}`)
	}
	f.Add(uint8(0), `{"key":"Zm9v","range_end":"AA==","limit":"-1","sort_order":"DESCEND"}`)
	f.Add(uint8(2), `{"compare":[{"key":"Zm9v","target":"VALUE","value":"YQ=="}],"success":[{"request_put":{"key":"Zm9v","value":"Yg=="}}]}`)
	f.Add(uint8(4), `{"create_request":{"key":"Zm9v","start_revision":"9223372036854775807"}}`)
	f.Add(uint8(0), `{"key":`+strings.Repeat("[", 200)+`}`)
	f.Add(uint8(1), "\x00\xff{")
	g, err := New(Options{LegacyPrefixes: []string{"/v3beta"}, LegacyMode: "rewrite", MaxRequestBytes: 1 << 16}, startFake(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		prefix := "/v3"
		if route&0x80 != 0 {
			prefix = "/v3beta"
		}
		path := prefix + routes[int(route&0x7f)%len(routes)]
		rec := serve(g, http.MethodPost, path, body)
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("%s %q: status %d", path, body, rec.Code)
		}
		if path[len(prefix):] == "/watch" {
			return // a stream of JSON lines
		}
		if b := rec.Body.Bytes(); len(b) > 0 && !json.Valid(b) {
			t.Fatalf("%s %q: %d with a body that is not JSON: %q", path, body, rec.Code, b)
		}
	})
}
