package etcdtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric is the value of the first series of the counter or gauge name in
// g whose first label has the value label (any series when label is "");
// 0 when there is none.
func Metric(t testing.TB, g prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if label != "" && (len(m.Label) == 0 || m.Label[0].GetValue() != label) {
				continue
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}
