package metricsalias

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/waitfor"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"
)

// scrapeAccepts are the Accept headers the handler must honour.
var scrapeAccepts = []struct {
	name, header string
	want         expfmt.FormatType
}{
	{"none (hey, curl)", "", expfmt.TypeTextPlain},
	{"text 0.0.4", "text/plain;version=0.0.4", expfmt.TypeTextPlain},
	{"Prometheus default (OpenMetrics first)", acceptPrometheusDefault, expfmt.TypeTextPlain},
	{"Prometheus native histograms (protobuf)", acceptPrometheusNative, expfmt.TypeProtoDelim},
	{"protobuf delimited", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", expfmt.TypeProtoDelim},
}

func clonePage(fams []*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, len(fams))
	for i, f := range fams {
		out[i] = proto.Clone(f).(*dto.MetricFamily)
	}
	return out
}

// memberPages are the upstream pages the handler is tested against.
func memberPages(t *testing.T) []struct {
	name string
	fams []*dto.MetricFamily
} {
	base := memberPage(t)
	// 3.4 serves both the etcd_debugging_mvcc_* and the etcd_mvcc_* names.
	v34 := clonePage(base)
	for _, f := range base {
		if n := f.GetName(); strings.HasPrefix(n, "etcd_mvcc_") {
			old := proto.Clone(f).(*dto.MetricFamily)
			old.Name = proto.String(strings.Replace(n, "etcd_mvcc_", "etcd_debugging_mvcc_", 1))
			old.Help = proto.String("the member's own")
			v34 = append(v34, old)
		}
	}
	sort.Slice(v34, func(i, j int) bool { return v34[i].GetName() < v34[j].GetName() })
	// A member that stamps its samples (etcd does not; an exporter might).
	stamped := clonePage(base)
	for _, f := range stamped {
		for _, m := range f.Metric {
			m.TimestampMs = proto.Int64(1700000000000)
		}
	}
	// Families out of order.
	unsorted := clonePage(base)
	sort.Slice(unsorted, func(i, j int) bool { return unsorted[i].GetName() > unsorted[j].GetName() })
	// Label values holding the characters a scanner might trip on.
	tricky := clonePage(base)
	tricky = append(tricky, counterFam("etcd_tricky_total", 3, "a", `} 1 2 "x\y`, "b", "{\n}"))
	sort.Slice(tricky, func(i, j int) bool { return tricky[i].GetName() < tricky[j].GetName() })
	return []struct {
		name string
		fams []*dto.MetricFamily
	}{{"3.7", base}, {"3.4 (old names present)", v34}, {"timestamps", stamped}, {"unsorted", unsorted}, {"tricky label values", tricky}}
}

// decodeAnswer decodes a /metrics body, counting each family name.
func decodeAnswer(t *testing.T, body []byte, format expfmt.Format) (map[string]*dto.MetricFamily, map[string]int, []string) {
	t.Helper()
	count := map[string]int{}
	var order []string
	if format.FormatType() == expfmt.TypeTextPlain {
		// TextParser merges repeated families; count TYPE lines instead.
		for _, l := range strings.Split(string(body), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
				count[f[2]]++
				order = append(order, f[2])
			}
		}
	}
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	fams := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decoding the answer: %v", err)
		}
		fams[mf.GetName()] = mf
		if format.FormatType() != expfmt.TypeTextPlain {
			count[mf.GetName()]++
			order = append(order, mf.GetName())
		}
	}
	return fams, count, order
}

func stripTimestamps(f *dto.MetricFamily) *dto.MetricFamily {
	f = proto.Clone(f).(*dto.MetricFamily)
	for _, m := range f.Metric {
		m.TimestampMs = nil
	}
	return f
}

func newTestHandler(t *testing.T, url string, log *zap.Logger) *Handler {
	t.Helper()
	tbl, err := LoadTable("")
	if err != nil {
		t.Fatal(err)
	}
	aliases, err := tbl.Active([]string{"grpc30"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h, err := New(Options{ScrapeURL: url, Aliases: aliases, Registerer: reg, Shim: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func scrape(t *testing.T, h http.Handler, accept string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestScrapeAnswers: for every member page, every member format and every
// scraper Accept header, the answer has each member family once and as the
// member served it (without timestamps), each alias the member lacks once
// with its source's type and values and an alias HELP, the shim's own
// families, no timestamps, and families sorted by name.
func TestScrapeAnswers(t *testing.T) {
	for _, pg := range memberPages(t) {
		for _, textOnly := range []bool{false, true} {
			member, _ := fakeMember(t, pg.fams)
			url := member.URL
			memberName := "member serves what is asked"
			if textOnly {
				memberName = "member serves text only"
				only := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					req, _ := http.NewRequest("GET", member.URL, nil)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						http.Error(w, err.Error(), 500)
						return
					}
					defer resp.Body.Close()
					w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
					_, _ = io.Copy(w, resp.Body)
				}))
				t.Cleanup(only.Close)
				url = only.URL
			}
			h := newTestHandler(t, url, zap.NewNop()).Metrics()
			for _, ac := range scrapeAccepts {
				t.Run(pg.name+"/"+memberName+"/"+ac.name, func(t *testing.T) {
					rec := scrape(t, h, ac.header)
					if rec.Code != http.StatusOK {
						t.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
					format := expfmt.Format(rec.Header().Get("Content-Type"))
					if format.FormatType() != ac.want {
						t.Fatalf("Content-Type %q, want format %v", format, ac.want)
					}
					if neg := expfmt.Negotiate(http.Header{"Accept": {ac.header}}); format != neg {
						t.Errorf("Content-Type %q, negotiated %q", format, neg)
					}
					got, count, order := decodeAnswer(t, rec.Body.Bytes(), format)
					checkAnswer(t, pg.fams, got, count, order, pg.name != "unsorted")
				})
			}
		}
	}
}

func checkAnswer(t *testing.T, member []*dto.MetricFamily, got map[string]*dto.MetricFamily, count map[string]int, order []string, sorted bool) {
	t.Helper()
	for name, n := range count {
		if n != 1 {
			t.Errorf("%s appears %d times", name, n)
		}
	}
	if sorted && !sort.StringsAreSorted(order) {
		t.Errorf("families not sorted by name")
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range member {
		byName[f.GetName()] = f
		if !proto.Equal(got[f.GetName()], stripTimestamps(f)) {
			t.Errorf("%s differs from the member's:\n got %v\nwant %v", f.GetName(), got[f.GetName()], stripTimestamps(f))
		}
	}
	for name, f := range got {
		for _, m := range f.Metric {
			if m.TimestampMs != nil {
				t.Fatalf("%s has a timestamp", name)
			}
		}
	}
	tbl, _ := LoadTable("")
	aliases, _ := tbl.Active([]string{"grpc30"})
	for _, a := range aliases {
		src, own := byName[a.Source], byName[a.Name]
		switch {
		case own != nil:
			if got[a.Name].GetHelp() != own.GetHelp() {
				t.Errorf("%s: the member's own family was replaced", a.Name)
			}
		case src == nil:
			if got[a.Name] != nil {
				t.Errorf("%s served without its source", a.Name)
			}
		case a.computed():
			if got[a.Name] == nil || got[a.Name].GetType() != dto.MetricType_COUNTER {
				t.Errorf("computed alias %s missing or not a counter: %v", a.Name, got[a.Name])
			}
		default:
			al := got[a.Name]
			if al == nil {
				t.Errorf("alias %s missing", a.Name)
				continue
			}
			want := stripTimestamps(src)
			if al.GetType() != want.GetType() || len(al.Metric) != len(want.Metric) {
				t.Errorf("alias %s: type or series differ from %s", a.Name, a.Source)
				continue
			}
			for i := range al.Metric {
				if !proto.Equal(al.Metric[i], want.Metric[i]) {
					t.Errorf("alias %s: %v, source %v", a.Name, al.Metric[i], want.Metric[i])
				}
			}
			if !strings.HasPrefix(al.GetHelp(), "Alias of "+a.Source+" ") {
				t.Errorf("alias %s HELP %q", a.Name, al.GetHelp())
			}
		}
	}
	if got["etcdshim_metrics_upstream_scrape_duration_seconds"] == nil {
		t.Errorf("the shim's own families are missing")
	}
}

// TestSpliceEqualsReencode: serving the member's bytes with the added
// families spliced in gives, byte for byte, what decoding the page and
// encoding it all again gives.
func TestSpliceEqualsReencode(t *testing.T) {
	fams := memberPage(t)
	tbl, _ := LoadTable("")
	aliases, _ := tbl.Active([]string{"grpc30", "etcd2"})
	for _, format := range []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeProtoDelim)} {
		t.Run(string(format), func(t *testing.T) {
			var buf bytes.Buffer
			enc := expfmt.NewEncoder(&buf, format)
			for _, f := range fams {
				if err := enc.Encode(f); err != nil {
					t.Fatal(err)
				}
			}
			p, err := readPage(&buf, format, -1)
			if err != nil {
				t.Fatal(err)
			}
			if !p.fast {
				t.Fatal("the 3.7 page was not served as it came")
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_test_total", Help: "t"}))
			own := []prometheus.Gatherer{reg}
			fast, err := p.splice(format, aliases, own, func(error) {})
			if err != nil {
				t.Fatal(err)
			}
			slow, err := p.reencode(format, aliases, own, func(error) {})
			if err != nil {
				t.Fatal(err)
			}
			if fb, sb := bytes.Join(fast.chunks, nil), bytes.Join(slow.chunks, nil); !bytes.Equal(fb, sb) {
				t.Errorf("spliced answer (%d bytes) differs from the re-encoded one (%d bytes)", len(fb), len(sb))
			}
			if fast.size != len(bytes.Join(fast.chunks, nil)) || fast.aliases != 5+2+2 || slow.aliases != fast.aliases {
				t.Errorf("size %d, aliases %d/%d", fast.size, fast.aliases, slow.aliases)
			}
		})
	}
}

// TestScanText: pages the text scanner serves as they came, and those it
// leaves to the decoding path.
func TestScanText(t *testing.T) {
	tests := []struct {
		name, page string
		fast       bool
	}{
		{"counter", "# HELP a_total h\n# TYPE a_total counter\na_total 1\n", true},
		{"no trailing newline", "# TYPE a gauge\na 1", true},
		{"histogram", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n", true},
		{"summary", "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 1\n", true},
		{"quoted braces and spaces", "# TYPE a gauge\na{x=\"} 1 2\",y=\"\\\"{\"} 1\n", true},
		{"comments and blank lines", "# just a comment\n\n# TYPE a gauge\n# another\na 1\n\n", true},
		{"HELP only", "# HELP a h\na 1\n", true},
		{"timestamp", "# TYPE a gauge\na 1 1700000000000\n", false},
		{"timestamp after labels", "# TYPE a gauge\na{x=\"y\"} 1 1700000000000\n", false},
		{"sample without HELP or TYPE", "a 1\n", false},
		{"another family without header", "# TYPE a gauge\na 1\nab 2\n", false},
		{"counter with _sum", "# TYPE a counter\na_sum 1\n", false},
		{"family twice", "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# TYPE a gauge\na 2\n", false},
		{"TYPE after samples", "# HELP a h\na 1\n# TYPE a gauge\n", false},
		{"no value", "# TYPE a gauge\na{x=\"y\"}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &page{body: bytes.NewBufferString(tt.page), format: expfmt.TypeTextPlain}
			if got := p.scanText(); got != tt.fast {
				t.Fatalf("scanText = %v, want %v", got, tt.fast)
			}
		})
	}
}

// failingMember answers 500 while fail is set, else a small page.
type failingMember struct {
	mu   sync.Mutex
	fail bool
}

func (m *failingMember) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	_ = expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain)).Encode(counterFam("etcd_mvcc_put_total", 1))
}

// TestUpstreamFailure: a member that fails, is unreachable or serves a page
// that does not parse gets 503, logged once per outage.
func TestUpstreamFailure(t *testing.T) {
	m := &failingMember{}
	member := httptest.NewServer(m)
	defer member.Close()
	core, logs := observer.New(zap.InfoLevel)
	h := newTestHandler(t, member.URL, zap.New(core)).Metrics()
	set := func(fail bool) { m.mu.Lock(); m.fail = fail; m.mu.Unlock() }
	steps := []struct {
		fail     bool
		wantCode int
		wantLogs int
	}{{false, 200, 0}, {true, 503, 1}, {true, 503, 1}, {false, 200, 2}, {true, 503, 3}}
	for i, s := range steps {
		set(s.fail)
		for _, ac := range scrapeAccepts {
			if rec := scrape(t, h, ac.header); rec.Code != s.wantCode {
				t.Fatalf("step %d (%s): status %d, want %d", i, ac.name, rec.Code, s.wantCode)
			}
		}
		if n := logs.Len(); n != s.wantLogs {
			t.Fatalf("step %d: %d log entries, want %d: %v", i, n, s.wantLogs, logs.All())
		}
	}

	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("# TYPE a gauge\na{x=\"y\"\n"))
	}))
	defer garbage.Close()
	unreachable := httptest.NewServer(http.NotFoundHandler())
	unreachable.Close()
	for name, url := range map[string]string{"page does not parse": garbage.URL, "unreachable": unreachable.URL} {
		t.Run(name, func(t *testing.T) {
			h := newTestHandler(t, url, zap.NewNop()).Metrics()
			for _, ac := range scrapeAccepts {
				if rec := scrape(t, h, ac.header); rec.Code != http.StatusServiceUnavailable {
					t.Errorf("%s: status %d, want 503", ac.name, rec.Code)
				}
			}
		})
	}
}

// TestConcurrentScrapesShareOneFetch: scrapes arriving while a fetch runs
// join it, whatever format each asks for, and each gets a whole answer.
func TestConcurrentScrapesShareOneFetch(t *testing.T) {
	fams := memberPage(t)
	member, fetches := fakeMember(t, fams)
	gate := make(chan struct{})
	gated := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-gate
		member.Config.Handler.ServeHTTP(w, r)
	}))
	defer gated.Close()
	// Open the gate however the test ends: Close waits for the fetch the
	// gate holds.
	open := sync.OnceFunc(func() { close(gate) })
	defer open()
	hd := newTestHandler(t, gated.URL, zap.NewNop())
	h := hd.Metrics()
	const perAccept = 3
	n := perAccept * len(scrapeAccepts)
	recs := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i] = scrape(t, h, scrapeAccepts[i%len(scrapeAccepts)].header)
		}()
	}
	waitfor.True(t, 10*time.Second, fmt.Sprintf("%d scrapes to join the fetch", n), func() bool {
		hd.mu.Lock()
		defer hd.mu.Unlock()
		return hd.cur != nil && hd.cur.users == n
	})
	open()
	waitfor.Group(t, &wg, time.Minute, "the scrapes to be answered")
	if got := fetches.Load(); got != 1 {
		t.Fatalf("%d upstream fetches, want 1", got)
	}
	for i, rec := range recs {
		ac := scrapeAccepts[i%len(scrapeAccepts)]
		t.Run(fmt.Sprint(ac.name, i), func(t *testing.T) {
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			got, count, order := decodeAnswer(t, rec.Body.Bytes(), expfmt.Format(rec.Header().Get("Content-Type")))
			checkAnswer(t, fams, got, count, order, true)
		})
	}
}

// TestScrapeTimeout: Prometheus' scrape timeout shortens the fetch's.
func TestScrapeTimeout(t *testing.T) {
	tests := []struct {
		name, header string
		opt, want    time.Duration
	}{
		{"default", "", 0, 5 * time.Second},
		{"--metrics-timeout", "", 2 * time.Second, 2 * time.Second},
		{"Prometheus' is shorter", "1.5", 5 * time.Second, 1250 * time.Millisecond},
		{"Prometheus' is longer", "10", 5 * time.Second, 5 * time.Second},
		{"too short to leave a margin", "0.2", 5 * time.Second, 5 * time.Second},
		{"not a number", "x", 3 * time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Handler{opts: Options{Timeout: tt.opt}}
			r := httptest.NewRequest("GET", "/metrics", nil)
			if tt.header != "" {
				r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tt.header)
			}
			if got := h.timeout(r); got != tt.want {
				t.Fatalf("timeout %v, want %v", got, tt.want)
			}
		})
	}
}
