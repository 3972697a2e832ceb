package metricsalias

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// memberPage is a real etcd 3.7.3 /metrics page (131 families, 1,800 lines),
// decoded.
func memberPage(tb testing.TB) []*dto.MetricFamily {
	tb.Helper()
	b, err := os.ReadFile("testdata/etcd-3.7.3.metrics.txt")
	if err != nil {
		tb.Fatal(err)
	}
	var tp expfmt.TextParser
	m, err := tp.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	fams := make([]*dto.MetricFamily, 0, len(m))
	for _, f := range m {
		fams = append(fams, f)
	}
	sort.Slice(fams, func(i, j int) bool { return fams[i].GetName() < fams[j].GetName() })
	return fams
}

// fakeMember serves fams in the negotiated format from bytes encoded up
// front, so a benchmark measures the shim, not the fake member. It counts
// the requests it answers.
func fakeMember(tb testing.TB, fams []*dto.MetricFamily) (*httptest.Server, *atomic.Int64) {
	tb.Helper()
	pages := map[expfmt.Format][]byte{}
	for _, f := range []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeProtoDelim)} {
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, f)
		for _, mf := range fams {
			if err := enc.Encode(mf); err != nil {
				tb.Fatal(err)
			}
		}
		pages[f] = buf.Bytes()
	}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		f := expfmt.NewFormat(expfmt.TypeTextPlain)
		if expfmt.Negotiate(r.Header).FormatType() == expfmt.TypeProtoDelim {
			f = expfmt.NewFormat(expfmt.TypeProtoDelim)
		}
		w.Header().Set("Content-Type", string(f))
		_, _ = w.Write(pages[f])
	}))
	tb.Cleanup(srv.Close)
	return srv, &n
}

// BenchmarkScrape serves /metrics from a real 3.7 page through the whole
// handler (fetch, index, alias, answer) over loopback HTTP, for the Accept
// headers of hey/curl (none), Prometheus' default (OpenMetrics first, served
// as text 0.0.4), and Prometheus with native histograms (protobuf).
func BenchmarkScrape(b *testing.B) {
	fams := memberPage(b)
	member, _ := fakeMember(b, fams)
	tbl, _ := LoadTable("")
	aliases, _ := tbl.Active(nil)
	shimReg := prometheus.NewRegistry()
	h, err := New(Options{ScrapeURL: member.URL, Aliases: aliases, Registerer: shimReg, Shim: shimReg})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h.Metrics())
	defer srv.Close()
	for _, accept := range []struct{ name, header string }{
		{"text", ""},
		{"openmetrics", acceptPrometheusDefault},
		{"protobuf", acceptPrometheusNative},
	} {
		for _, target := range []struct{ name, url string }{{"direct", member.URL}, {"shim", srv.URL}} {
			b.Run(accept.name+"/"+target.name, func(b *testing.B) {
				b.ReportAllocs()
				req, _ := http.NewRequest("GET", target.url, nil)
				if accept.header != "" {
					req.Header.Set("Accept", accept.header)
				}
				for b.Loop() {
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
	}
}

// Prometheus 3's Accept headers: the default scrape_protocols, and with
// native histograms on (PrometheusProto first).
const (
	acceptPrometheusDefault = `application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1`
	acceptPrometheusNative  = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.2,text/plain;version=0.0.4;q=0.1,*/*;q=0.05`
)

// BenchmarkAnswer is the shim's own work on one scrape, without the network:
// index the member's page, build the answer in the same format (splice) or
// in the other one (decode and re-encode everything).
func BenchmarkAnswer(b *testing.B) {
	fams := memberPage(b)
	tbl, _ := LoadTable("")
	aliases, _ := tbl.Active(nil)
	reg := prometheus.NewRegistry()
	if _, err := New(Options{ScrapeURL: "http://member/metrics", Registerer: reg}); err != nil {
		b.Fatal(err)
	}
	own := []prometheus.Gatherer{reg}
	for _, tc := range []struct {
		name     string
		in, out  expfmt.FormatType
		wantFast bool
	}{
		{"text", expfmt.TypeTextPlain, expfmt.TypeTextPlain, true},
		{"protobuf", expfmt.TypeProtoDelim, expfmt.TypeProtoDelim, true},
		{"protobuf-to-text", expfmt.TypeProtoDelim, expfmt.TypeTextPlain, false},
	} {
		var page bytes.Buffer
		enc := expfmt.NewEncoder(&page, expfmt.NewFormat(tc.in))
		for _, f := range fams {
			_ = enc.Encode(f)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(page.Len()))
			for b.Loop() {
				p, err := readPage(bytes.NewReader(page.Bytes()), expfmt.NewFormat(tc.in), int64(page.Len()))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.answer(expfmt.NewFormat(tc.out), aliases, own, func(error) {}); err != nil {
					b.Fatal(err)
				}
				p.free()
			}
		})
	}
}
