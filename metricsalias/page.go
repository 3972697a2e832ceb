package metricsalias

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// page is one fetch of the member's /metrics, kept as the member's own bytes.
// Scraping the member and answering in the same format (the usual case: one
// Prometheus, or an HA pair asking alike) never decodes the member's families:
// scan indexes where each family starts and ends, the answer is those bytes
// with the added families spliced in, and only alias sources are decoded. A
// profile of the previous decode-everything, re-encode-everything handler had
// protobuf unmarshalling at half and text encoding at a quarter of the shim's
// CPU per scrape, about 10 ms for a 3.7 page.
type page struct {
	body   *bytes.Buffer
	format expfmt.FormatType // TypeProtoDelim or TypeTextPlain

	// fast: scan understood every line or message, found no sample
	// timestamps and no name that would need escaping, so the member's bytes
	// can be served as they are. Otherwise only the decoding path is used.
	fast bool
	// prefix ends the bytes before the first family (text comments).
	prefix int
	fams   []segment
	index  map[string]int

	mu      sync.Mutex
	decoded map[string]*dto.MetricFamily // the decoding path's families, once
	decErr  error
	outs    map[expfmt.Format]*answer
}

// segment is one family's bytes: body[start:end]; for protobuf, the message
// without its length prefix is body[msg:end].
type segment struct {
	name            string
	start, msg, end int
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPage bounds a member page read into memory (a 3.7 page is ~180 kB).
const maxPage = 64 << 20

func getBuf() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuf(b *bytes.Buffer) {
	if b == nil || b.Cap() > maxPage/4 {
		return // let an unusually large buffer go
	}
	b.Reset()
	bufPool.Put(b)
}

// readPage reads the member's answer and indexes it.
func readPage(r io.Reader, format expfmt.Format, sizeHint int64) (*page, error) {
	p := &page{body: getBuf(), format: expfmt.TypeTextPlain}
	if format.FormatType() == expfmt.TypeProtoDelim {
		p.format = expfmt.TypeProtoDelim
	}
	if sizeHint > 0 && sizeHint < maxPage {
		p.body.Grow(int(sizeHint) + bytes.MinRead)
	}
	n, err := p.body.ReadFrom(io.LimitReader(r, maxPage+1))
	if err != nil {
		p.free()
		return nil, fmt.Errorf("reading the member's metrics: %w", err)
	}
	if n > maxPage {
		p.free()
		return nil, fmt.Errorf("the member's metrics exceed %d bytes", maxPage)
	}
	if p.format == expfmt.TypeTextPlain {
		if b := p.body.Bytes(); len(b) > 0 && b[len(b)-1] != '\n' {
			p.body.WriteByte('\n') // so spliced families start on their own line
		}
		p.fast = p.scanText()
	} else {
		p.fast = p.scanProto()
	}
	if !p.fast {
		// Validate now, so a page nothing can serve answers 503.
		if _, err := p.decodeAll(); err != nil {
			p.free()
			return nil, err
		}
	}
	return p, nil
}

// free returns the page's buffers to the pool; nothing may use it after.
func (p *page) free() {
	putBuf(p.body)
	p.body = nil
	for _, a := range p.outs {
		putBuf(a.extra)
	}
	p.outs = nil
}

func (p *page) has(name string) bool {
	if p.fast {
		_, ok := p.index[name]
		return ok
	}
	_, ok := p.decoded[name]
	return ok
}

func (p *page) startFamily(name string, start, msg int) bool {
	if p.index == nil {
		p.index = make(map[string]int, 160)
	}
	if _, dup := p.index[name]; dup {
		return false // the decoding path keeps one of them, as before
	}
	if n := len(p.fams); n > 0 {
		p.fams[n-1].end = start
	} else {
		p.prefix = start
	}
	p.index[name] = len(p.fams)
	p.fams = append(p.fams, segment{name: name, start: start, msg: msg})
	return true
}

// scanText indexes a text (0.0.4) page: a family starts at its first HELP or
// TYPE line; each sample line must belong to the family above it and carry
// no timestamp.
func (p *page) scanText() bool {
	b := p.body.Bytes()
	var cur *segment
	typ := []byte(nil) // the TYPE line's type, aliasing the page
	samples := 0
	for i := 0; i < len(b); {
		end := len(b)
		if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
			end = i + j + 1
		}
		line := b[i:end]
		for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
			line = line[:len(line)-1]
		}
		start := i
		i = end
		k := skipBlanks(line, 0)
		if k == len(line) {
			continue
		}
		if line[k] == '#' {
			k = skipBlanks(line, k+1)
			kw := line[k:tokenEnd(line, k)]
			isHelp, isType := string(kw) == "HELP", string(kw) == "TYPE"
			if !isHelp && !isType {
				continue // a plain comment
			}
			k = skipBlanks(line, k+len(kw))
			name := line[k:tokenEnd(line, k)]
			if len(name) == 0 {
				return false
			}
			if cur == nil || string(name) != cur.name {
				if !p.startFamily(string(name), start, start) {
					return false
				}
				cur, typ, samples = &p.fams[len(p.fams)-1], nil, 0
			} else if samples > 0 {
				return false
			}
			if isType {
				if typ != nil {
					return false
				}
				k = skipBlanks(line, k+len(name))
				typ = line[k:tokenEnd(line, k)]
			}
			continue
		}
		if cur == nil || !sampleOK(line, k, cur.name, typ) {
			return false
		}
		samples++
	}
	if n := len(p.fams); n > 0 {
		p.fams[n-1].end = len(b)
	} else {
		p.prefix = len(b)
	}
	return true
}

func skipBlanks(b []byte, k int) int {
	for k < len(b) && (b[k] == ' ' || b[k] == '\t') {
		k++
	}
	return k
}

func tokenEnd(b []byte, k int) int {
	for k < len(b) && b[k] != ' ' && b[k] != '\t' {
		k++
	}
	return k
}

// sampleOK checks a sample line from k: the name is fam's (or, for a
// summary or histogram, fam's with _sum, _count or _bucket), then an optional
// label set, a value and no timestamp. Values and timestamps hold no '}', so
// the label set ends at the line's last '}' however its values are quoted,
// and only the few bytes after it need looking at.
func sampleOK(line []byte, k int, fam string, typ []byte) bool {
	if len(line)-k <= len(fam) || string(line[k:k+len(fam)]) != fam {
		return false
	}
	k += len(fam)
	if line[k] == '_' {
		var suffixes []string
		switch string(typ) {
		case "summary":
			suffixes = []string{"_sum", "_count"}
		case "histogram":
			suffixes = []string{"_bucket", "_sum", "_count"}
		}
		n := k
		for _, sfx := range suffixes {
			if bytes.HasPrefix(line[k:], []byte(sfx)) {
				n = k + len(sfx)
				break
			}
		}
		if n == k || n == len(line) {
			return false
		}
		k = n
	}
	switch line[k] {
	case '{':
		k = bytes.LastIndexByte(line, '}') + 1
		if k == 0 {
			return false
		}
	case ' ', '\t':
	default:
		return false // a longer name: another family without HELP or TYPE
	}
	k = skipBlanks(line, k)
	v := tokenEnd(line, k)
	return v > k && skipBlanks(line, v) == len(line)
}

// scanProto indexes a delimited-protobuf page, walking the wire format
// without unmarshalling: family names, and each metric's fields for a
// timestamp or a label name that would need escaping.
func (p *page) scanProto() bool {
	b := p.body.Bytes()
	for off := 0; off < len(b); {
		n, l := protowire.ConsumeVarint(b[off:])
		if l < 0 || n > uint64(len(b)-off-l) {
			return false
		}
		msg := b[off+l : off+l+int(n)]
		name, ok := scanFamily(msg)
		if !ok || !model.IsValidLegacyMetricName(name) || !p.startFamily(name, off, off+l) {
			return false
		}
		off += l + int(n)
	}
	if n := len(p.fams); n > 0 {
		p.fams[n-1].end = len(b)
	} else {
		p.prefix = len(b)
	}
	return true
}

// MetricFamily fields: 1 name, 4 metric. Metric: 1 label, 6 timestamp_ms.
// LabelPair: 1 name.
func scanFamily(msg []byte) (string, bool) {
	name := ""
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return "", false
		}
		msg = msg[l:]
		if typ == protowire.BytesType && (num == 1 || num == 4) {
			v, l := protowire.ConsumeBytes(msg)
			if l < 0 {
				return "", false
			}
			msg = msg[l:]
			if num == 1 {
				name = string(v)
			} else if !scanMetric(v) {
				return "", false
			}
			continue
		}
		l = protowire.ConsumeFieldValue(num, typ, msg)
		if l < 0 {
			return "", false
		}
		msg = msg[l:]
	}
	return name, name != ""
}

func scanMetric(m []byte) bool {
	for len(m) > 0 {
		num, typ, l := protowire.ConsumeTag(m)
		if l < 0 || num == 6 {
			return false // a timestamp: the decoding path drops it
		}
		m = m[l:]
		if num == 1 && typ == protowire.BytesType {
			lp, l := protowire.ConsumeBytes(m)
			if l < 0 || !legacyLabelName(lp) {
				return false
			}
			m = m[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(num, typ, m)
		if l < 0 {
			return false
		}
		m = m[l:]
	}
	return true
}

// legacyLabelName: the LabelPair's name is [a-zA-Z_][a-zA-Z0-9_]* and not
// __name__, so no escaping scheme changes it.
func legacyLabelName(lp []byte) bool {
	for len(lp) > 0 {
		num, typ, l := protowire.ConsumeTag(lp)
		if l < 0 {
			return false
		}
		lp = lp[l:]
		if num == 1 && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(lp)
			if l < 0 || len(v) == 0 || string(v) == model.MetricNameLabel {
				return false
			}
			for i, c := range v {
				if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
					return false
				}
			}
			return true
		}
		l = protowire.ConsumeFieldValue(num, typ, lp)
		if l < 0 {
			return false
		}
		lp = lp[l:]
	}
	return false
}

// family decodes one family of a fast page (an alias source).
func (p *page) family(name string) (*dto.MetricFamily, error) {
	if !p.fast {
		return p.decoded[name], nil
	}
	i, ok := p.index[name]
	if !ok {
		return nil, nil
	}
	s := p.fams[i]
	b := p.body.Bytes()
	if p.format == expfmt.TypeProtoDelim {
		mf := &dto.MetricFamily{}
		if err := proto.Unmarshal(b[s.msg:s.end], mf); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", name, err)
		}
		return mf, nil
	}
	var tp expfmt.TextParser
	fams, err := tp.TextToMetricFamilies(bytes.NewReader(b[s.start:s.end]))
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", name, err)
	}
	return fams[name], nil
}

// decodeAll decodes the whole page once (the path for a page the fast path
// cannot serve as it is, or an answer in another format than the member's).
// Sample timestamps are dropped: Prometheus stamps at scrape time.
func (p *page) decodeAll() (map[string]*dto.MetricFamily, error) {
	if p.decoded != nil || p.decErr != nil {
		return p.decoded, p.decErr
	}
	dec := expfmt.NewDecoder(bytes.NewReader(p.body.Bytes()), expfmt.NewFormat(p.format))
	out := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			p.decErr = fmt.Errorf("decoding the member's metrics: %w", err)
			return nil, p.decErr
		}
		for _, m := range mf.Metric {
			m.TimestampMs = nil
		}
		out[mf.GetName()] = mf
	}
	p.decoded = out
	return out, nil
}
