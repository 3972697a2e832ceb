package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
)

// BenchmarkRange compares POST /v3beta/kv/range through the shim's gateway
// with POST /v3/kv/range on the member's own gateway, same member.
func BenchmarkRange(b *testing.B) {
	e, cc := etcdtest.Start(b)
	g, err := New(Options{LegacyPrefixes: []string{"/v3beta"}, LegacyMode: "rewrite", MaxRequestBytes: 1 << 20}, cc)
	if err != nil {
		b.Fatal(err)
	}
	shim := httptest.NewServer(g)
	defer shim.Close()
	member := e.Config().ListenClientUrls[0].String()
	body := `{"key":"Zm9v"}`
	for _, target := range []struct{ name, url string }{
		{"member-v3", member + "/v3/kv/range"},
		{"shim-v3beta", shim.URL + "/v3beta/kv/range"},
	} {
		b.Run(target.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				resp, err := http.Post(target.url, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d", target.name, resp.StatusCode)
				}
			}
		})
	}
}
