package metricsalias

import (
	"bytes"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// applyAliases returns the families to add to an upstream page: each alias
// whose name the page lacks (has) and whose source it has (get decodes it, or
// returns nil).
func applyAliases(has func(name string) bool, get func(name string) *dto.MetricFamily, aliases []Alias) []*dto.MetricFamily {
	var out []*dto.MetricFamily
	for _, a := range aliases {
		if has(a.Name) || !has(a.Source) {
			continue
		}
		src := get(a.Source)
		if src == nil {
			continue
		}
		var fam *dto.MetricFamily
		if a.computed() {
			fam = sumFamily(src, a)
		} else {
			// Clone: families may be shared between concurrent scrapes.
			fam = proto.Clone(src).(*dto.MetricFamily)
			fam.Help = proto.String("Alias of " + a.Source + " under its pre-3.5 name. " + src.GetHelp())
		}
		fam.Name = proto.String(a.Name)
		out = append(out, fam)
	}
	return out
}

// sumFamily computes a counter summed over a.SumWithout, skipping series
// that match a.Exclude.
func sumFamily(src *dto.MetricFamily, a Alias) *dto.MetricFamily {
	drop := map[string]bool{}
	for _, l := range a.SumWithout {
		drop[l] = true
	}
	type acc struct {
		labels []*dto.LabelPair
		v      float64
	}
	sums := map[string]*acc{}
	var order []string
	for _, m := range src.Metric {
		skip := false
		var kept []*dto.LabelPair
		for _, lp := range m.Label {
			if want, ok := a.Exclude[lp.GetName()]; ok && lp.GetValue() == want {
				skip = true
				break
			}
			if !drop[lp.GetName()] {
				kept = append(kept, &dto.LabelPair{Name: proto.String(lp.GetName()), Value: proto.String(lp.GetValue())})
			}
		}
		if skip {
			continue
		}
		sort.Slice(kept, func(i, j int) bool { return kept[i].GetName() < kept[j].GetName() })
		var key strings.Builder
		for _, lp := range kept {
			key.WriteString(lp.GetName() + "\x00" + lp.GetValue() + "\x00")
		}
		k := key.String()
		if sums[k] == nil {
			sums[k] = &acc{labels: kept}
			order = append(order, k)
		}
		sums[k].v += m.GetCounter().GetValue() + m.GetUntyped().GetValue() + m.GetGauge().GetValue()
	}
	fam := &dto.MetricFamily{
		Type: dto.MetricType_COUNTER.Enum(),
		Help: proto.String("Computed for pre-3.1 dashboards: " + a.Source + " summed without " + strings.Join(a.SumWithout, ",") + ". Approximate; see configs/metric-aliases.yaml."),
	}
	for _, k := range order {
		fam.Metric = append(fam.Metric, &dto.Metric{Label: sums[k].labels, Counter: &dto.Counter{Value: proto.Float64(sums[k].v)}})
	}
	return fam
}
