package metricsalias

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// BenchmarkScrape serves /metrics from a fake member page of 130 families
// (the size of a 3.7 page) through the whole handler: fetch, decode, alias,
// encode.
func BenchmarkScrape(b *testing.B) {
	var fams []*dto.MetricFamily
	for i := 0; i < 125; i++ {
		fams = append(fams, counterFam(fmt.Sprintf("etcd_family_%03d_total", i), float64(i), "label", "x"))
	}
	fams = append(fams, counterFam("etcd_mvcc_put_total", 1), counterFam("etcd_mvcc_range_total", 2))
	member := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		format := expfmt.Negotiate(r.Header)
		w.Header().Set("Content-Type", string(format))
		enc := expfmt.NewEncoder(w, format)
		for _, f := range fams {
			_ = enc.Encode(f)
		}
	}))
	defer member.Close()
	tbl, _ := LoadTable("")
	aliases, _ := tbl.Active(nil)
	h, err := New(Options{ScrapeURL: member.URL, Aliases: aliases})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h.Metrics())
	defer srv.Close()
	for _, target := range []struct{ name, url string }{{"direct", member.URL}, {"shim", srv.URL}} {
		b.Run(target.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				resp, err := http.Get(target.url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
