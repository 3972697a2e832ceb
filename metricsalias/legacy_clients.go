package metricsalias

import (
	"container/list"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// legacySurfaces are the surfaces the tracker knows; each is exported even
// with no client, so a dashboard shows 0 rather than nothing.
var legacySurfaces = []string{"v2", "v3beta", "v3alpha", "metric-alias"}

// legacyWindows are the recency windows of etcdshim_legacy_clients.
var legacyWindows = []struct {
	label string
	d     time.Duration // 0: any time since the shim started
}{{"1h", time.Hour}, {"1d", 24 * time.Hour}, {"ever", 0}}

var legacyClientsDesc = prometheus.NewDesc("etcdshim_legacy_clients",
	"Clients (address, user agent, v2 user) on each legacy surface that the /debug/legacy table remembers, "+
		"by how recently they were seen (seen_within 1h, 1d, or ever since the shim started).",
	[]string{"surface", "seen_within"}, nil)

// legacyClients exports the tracker's client counts at scrape time: how
// many clients are still on each surface, without a label per client.
type legacyClients struct{ t *LegacyTracker }

func (c legacyClients) Describe(ch chan<- *prometheus.Desc) { ch <- legacyClientsDesc }

func (c legacyClients) Collect(ch chan<- prometheus.Metric) {
	now := c.t.now()
	counts := map[string][]int{}
	for _, s := range legacySurfaces {
		counts[s] = make([]int, len(legacyWindows))
	}
	c.t.mu.Lock()
	for _, l := range []*list.List{c.t.authed, c.t.anon} {
		for el := l.Front(); el != nil; el = el.Next() {
			lc := el.Value.(*LegacyClient)
			n, ok := counts[lc.Surface]
			if !ok {
				n = make([]int, len(legacyWindows))
				counts[lc.Surface] = n
			}
			for i, w := range legacyWindows {
				if w.d == 0 || now.Sub(lc.LastSeen) <= w.d {
					n[i]++
				}
			}
		}
	}
	c.t.mu.Unlock()
	for surface, n := range counts {
		for i, w := range legacyWindows {
			ch <- prometheus.MustNewConstMetric(legacyClientsDesc, prometheus.GaugeValue, float64(n[i]), surface, w.label)
		}
	}
}
