package metricsalias

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func TestShippedTableMatchesEmbedded(t *testing.T) {
	shipped, err := os.ReadFile("../configs/metric-aliases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shipped, defaultTable) {
		t.Fatal("configs/metric-aliases.yaml and metricsalias/aliases.yaml differ: keep them identical")
	}
	tbl, err := LoadTable("")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"doc-typos", "etcd2", "grpc30"} {
		if _, err := tbl.Active([]string{g}); err != nil {
			t.Errorf("group %s: %v", g, err)
		}
	}
	if _, err := tbl.Active([]string{"nope"}); err == nil {
		t.Error("unknown group accepted")
	}
}

func counterFam(name string, v float64, labels ...string) *dto.MetricFamily {
	m := &dto.Metric{Counter: &dto.Counter{Value: proto.Float64(v)}}
	for i := 0; i+1 < len(labels); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(labels[i]), Value: proto.String(labels[i+1])})
	}
	return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_COUNTER.Enum(), Help: proto.String("h"), Metric: []*dto.Metric{m}}
}

func TestApplyAliases(t *testing.T) {
	tbl, _ := LoadTable("")
	aliases, _ := tbl.Active([]string{"grpc30"})
	tests := []struct {
		name string
		page []*dto.MetricFamily
		want map[string]float64
	}{
		{"3.6: new name only", []*dto.MetricFamily{counterFam("etcd_mvcc_put_total", 7)}, map[string]float64{"etcd_debugging_mvcc_put_total": 7}},
		{"3.4: both present, no duplicate", []*dto.MetricFamily{counterFam("etcd_mvcc_put_total", 7), counterFam("etcd_debugging_mvcc_put_total", 7)}, map[string]float64{}},
		{"source missing", []*dto.MetricFamily{counterFam("other_total", 1)}, map[string]float64{}},
		{"computed sum without grpc_type", []*dto.MetricFamily{{
			Name: proto.String("grpc_server_handled_total"), Type: dto.MetricType_COUNTER.Enum(),
			Metric: []*dto.Metric{
				counterFam("", 2, "grpc_code", "OK", "grpc_method", "Range", "grpc_type", "unary").Metric[0],
				counterFam("", 3, "grpc_code", "Unavailable", "grpc_method", "Range", "grpc_type", "unary").Metric[0],
				counterFam("", 4, "grpc_code", "Unavailable", "grpc_method", "Range", "grpc_type", "bidi_stream").Metric[0],
			},
		}}, map[string]float64{"etcd_grpc_requests_failed_total": 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := map[string]*dto.MetricFamily{}
			for _, f := range tt.page {
				page[f.GetName()] = f
			}
			got := map[string]float64{}
			for _, f := range applyAliases(func(n string) bool { return page[n] != nil }, func(n string) *dto.MetricFamily { return page[n] }, aliases) {
				for _, m := range f.Metric {
					got[f.GetName()] += m.GetCounter().GetValue()
					for _, lp := range m.Label {
						if lp.GetName() == "grpc_type" {
							t.Errorf("%s kept grpc_type", f.GetName())
						}
					}
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestV2HTTPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewV2HTTPMetrics(reg)
	h := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "missing") {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	for _, target := range []string{"/v2/keys/a", "/v2/keys/a?quorum=true", "/v2/keys/missing", "/v2/keys/a?wait=true"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil))
	}
	if got := testutil.ToFloat64(m.received.WithLabelValues("GET")); got != 3 {
		t.Errorf("received GET = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.received.WithLabelValues("QGET")); got != 1 {
		t.Errorf("received QGET = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.failed.WithLabelValues("GET", "404")); got != 1 {
		t.Errorf("failed GET 404 = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("%d duration series, want GET and QGET", n)
	}
}

func TestLegacyTrackerBounded(t *testing.T) {
	tr := NewLegacyTracker(2, prometheus.NewRegistry())
	for _, agent := range []string{"a", "b", "c", "b"} {
		r := httptest.NewRequest("GET", "/v2/keys/x", nil)
		r.RemoteAddr = "10.0.0.1:5555"
		r.Header.Set("User-Agent", agent)
		tr.Observe(r, "v2", "")
	}
	cs := tr.Clients()
	if len(cs) != 2 || cs[0].UserAgent != "b" || cs[0].Requests != 2 || cs[1].UserAgent != "c" || cs[0].Remote != "10.0.0.1" {
		t.Fatalf("clients %+v", cs)
	}
	if got := testutil.ToFloat64(tr.requests.WithLabelValues("v2")); got != 4 {
		t.Fatalf("v2 requests %v", got)
	}
}
