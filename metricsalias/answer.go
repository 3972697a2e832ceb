package metricsalias

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// answer is one /metrics body in one format, built once per fetch and format
// and shared by every scrape that joined the fetch: pieces of the member's
// bytes with the added families (aliases, the shim's own) between them.
type answer struct {
	chunks  [][]byte
	size    int
	aliases int
	extra   *bytes.Buffer // holds what chunks reference beyond the page
}

func (a *answer) write(w http.ResponseWriter, format expfmt.Format) error {
	w.Header().Set("Content-Type", string(format))
	w.Header().Set("Content-Length", strconv.Itoa(a.size))
	for _, c := range a.chunks {
		if _, err := w.Write(c); err != nil {
			return err
		}
	}
	return nil
}

// added is a family the shim adds to the member's page.
type added struct {
	name string
	fam  *dto.MetricFamily
}

// answer builds (once) the body for format.
func (p *page) answer(format expfmt.Format, aliases []Alias, own []prometheus.Gatherer, warn func(error)) (*answer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.outs[format]; a != nil {
		return a, nil
	}
	var a *answer
	var err error
	if p.fast && format.FormatType() == p.format {
		a, err = p.splice(format, aliases, own, warn)
	} else {
		a, err = p.reencode(format, aliases, own, warn)
	}
	if err != nil {
		return nil, err
	}
	if p.outs == nil {
		p.outs = map[expfmt.Format]*answer{}
	}
	p.outs[format] = a
	return a, nil
}

// extras are the aliases the page lacks and the shim's own families whose
// names neither the page nor an alias uses, sorted by name.
func (p *page) extras(aliases []Alias, own []prometheus.Gatherer, warn func(error)) ([]added, int, error) {
	var decodeErr error
	fams := applyAliases(p.has, func(name string) *dto.MetricFamily {
		mf, err := p.family(name)
		if err != nil && decodeErr == nil {
			decodeErr = err
		}
		return mf
	}, aliases)
	if decodeErr != nil {
		return nil, 0, decodeErr
	}
	out := make([]added, 0, len(fams)+32)
	taken := make(map[string]bool, len(fams))
	for _, f := range fams {
		out = append(out, added{f.GetName(), f})
		taken[f.GetName()] = true
	}
	for _, g := range own {
		if g == nil {
			continue
		}
		got, err := g.Gather()
		if err != nil {
			warn(err)
		}
		for _, f := range got {
			// The shim's etcdshim_* never collide with etcd's names; the
			// v2 etcd_http_* families only join when the member lacks them.
			if n := f.GetName(); !p.has(n) && !taken[n] {
				taken[n] = true
				out = append(out, added{n, f})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, len(fams), nil
}

// splice answers in the member's own format: its bytes as they came, with
// each added family encoded and put before the first member family that
// sorts after it (the member's page is sorted, so the answer is too).
func (p *page) splice(format expfmt.Format, aliases []Alias, own []prometheus.Gatherer, warn func(error)) (*answer, error) {
	add, nAliases, err := p.extras(aliases, own, warn)
	if err != nil {
		return nil, err
	}
	a := &answer{aliases: nAliases, extra: getBuf()}
	// Encode every added family first: chunks must not point into extra
	// while it can still grow.
	ends := make([]int, len(add))
	enc := expfmt.NewEncoder(a.extra, format)
	for i, f := range add {
		if err := enc.Encode(f.fam); err != nil {
			putBuf(a.extra)
			return nil, fmt.Errorf("encoding %s: %w", f.name, err)
		}
		ends[i] = a.extra.Len()
	}
	body, extra := p.body.Bytes(), a.extra.Bytes()
	a.chunks = make([][]byte, 0, 2*len(add)+2)
	emit := func(c []byte) {
		if len(c) > 0 {
			a.chunks = append(a.chunks, c)
			a.size += len(c)
		}
	}
	from, j, eStart := 0, 0, 0
	flushExtras := func(before string, all bool) {
		eEnd := eStart
		for j < len(add) && (all || add[j].name < before) {
			eEnd = ends[j]
			j++
		}
		emit(extra[eStart:eEnd])
		eStart = eEnd
	}
	for _, s := range p.fams {
		if j < len(add) && add[j].name < s.name {
			emit(body[from:s.start])
			from = s.start
			flushExtras(s.name, false)
		}
	}
	emit(body[from:])
	flushExtras("", true)
	return a, nil
}

// reencode decodes the whole page and encodes it with the added families in
// format (the member answered in another format than this scraper wants, or
// its page needs more than splicing).
func (p *page) reencode(format expfmt.Format, aliases []Alias, own []prometheus.Gatherer, warn func(error)) (*answer, error) {
	page, err := p.decodeAll()
	if err != nil {
		return nil, err
	}
	add, nAliases, err := p.extras(aliases, own, warn)
	if err != nil {
		return nil, err
	}
	fams := make([]*dto.MetricFamily, 0, len(page)+len(add))
	for _, f := range page {
		fams = append(fams, f)
	}
	for _, f := range add {
		fams = append(fams, f.fam)
	}
	sort.Slice(fams, func(i, j int) bool { return fams[i].GetName() < fams[j].GetName() })
	a := &answer{aliases: nAliases, extra: getBuf()}
	enc := expfmt.NewEncoder(a.extra, format)
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			putBuf(a.extra)
			return nil, fmt.Errorf("encoding %s: %w", f.GetName(), err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		_ = c.Close()
	}
	a.chunks = [][]byte{a.extra.Bytes()}
	a.size = a.extra.Len()
	return a, nil
}
