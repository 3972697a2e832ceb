package proxy

import (
	"bytes"
	"strconv"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// framesFor builds a byte stream of real HTTP/2 frames with x/net's framer.
func framesFor(t *testing.T, write func(fr *http2.Framer)) []byte {
	t.Helper()
	var buf bytes.Buffer
	write(http2.NewFramer(&buf, nil))
	return buf.Bytes()
}

func TestFrameScannerBoundaries(t *testing.T) {
	stream := framesFor(t, func(fr *http2.Framer) {
		_ = fr.WriteSettings()
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}, EndHeaders: true})
		_ = fr.WriteData(1, false, bytes.Repeat([]byte("x"), 1000))
		_ = fr.WriteData(1, true, nil)
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
	})
	for _, chunk := range []int{1, 2, 9, 10, 100, len(stream)} {
		t.Run("chunk"+strconv.Itoa(chunk), func(t *testing.T) {
			var got []frameHeader
			s := frameScanner{onFrame: func(h frameHeader, _ []byte) { got = append(got, h) }}
			for i := 0; i < len(stream); i += chunk {
				end := min(i+chunk, len(stream))
				if n := s.scan(stream[i:end], false); n != end-i {
					t.Fatalf("scan walked %d of %d bytes", n, end-i)
				}
			}
			if !s.atBoundary() {
				t.Fatal("not at a boundary after whole frames")
			}
			wantTypes := []uint8{0x4, frameHeaders, frameData, frameData, frameRSTStream}
			if len(got) != len(wantTypes) {
				t.Fatalf("got %d frames, want %d", len(got), len(wantTypes))
			}
			for i, h := range got {
				if h.typ != wantTypes[i] {
					t.Errorf("frame %d type %d, want %d", i, h.typ, wantTypes[i])
				}
			}
			if got[3].flags&flagEndStream == 0 || got[3].streamID != 1 {
				t.Errorf("END_STREAM data frame not seen: %+v", got[3])
			}
		})
	}
}

func TestFrameScannerStopsAtBoundary(t *testing.T) {
	stream := framesFor(t, func(fr *http2.Framer) {
		_ = fr.WriteData(1, false, []byte("abc"))
		_ = fr.WriteData(1, false, []byte("de"))
	})
	var s frameScanner
	if n := s.scan(stream, true); n != 9+3 {
		t.Fatalf("stopped after %d bytes, want %d", n, 12)
	}
	if !s.atBoundary() {
		t.Fatal("not at boundary after the first frame")
	}
	if n := s.scan(stream[12:15], true); n != 3 || s.atBoundary() {
		t.Fatalf("partial header: walked %d, boundary %v", n, s.atBoundary())
	}
}

func TestFrameScannerSkipsPreface(t *testing.T) {
	stream := append([]byte(clientPreface), framesFor(t, func(fr *http2.Framer) { _ = fr.WriteSettings() })...)
	var n int
	s := frameScanner{skip: len(clientPreface), onFrame: func(h frameHeader, _ []byte) { n++ }}
	s.scan(stream, false)
	if n != 1 {
		t.Fatalf("saw %d frames, want the one SETTINGS frame", n)
	}
}

func TestHeaderBlockFragment(t *testing.T) {
	tests := []struct {
		name    string
		flags   uint8
		payload []byte
		want    []byte
		ok      bool
	}{
		{"plain", 0, []byte{1, 2, 3}, []byte{1, 2, 3}, true},
		{"padded", flagPadded, []byte{2, 1, 2, 3, 0, 0}, []byte{1, 2, 3}, true},
		{"priority", flagPriority, []byte{0, 0, 0, 0, 16, 7}, []byte{7}, true},
		{"padding too long", flagPadded, []byte{9, 1}, nil, false},
		{"empty padded", flagPadded, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := headerBlockFragment(frameHeader{flags: tt.flags}, tt.payload)
			if ok != tt.ok || !bytes.Equal(got, tt.want) {
				t.Fatalf("got %v %v, want %v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// The injected frames must be valid HTTP/2 that a real framer and HPACK
// decoder accept, and the trailers must not touch the dynamic table.
func TestInjectedFramesParse(t *testing.T) {
	raw := append(goAwayFrame(0x7fffffff, "bye"), unavailableTrailers(5, true)...)
	raw = append(raw, unavailableTrailers(7, false)...)
	fr := http2.NewFramer(nil, bytes.NewReader(raw))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	ga, ok := f.(*http2.GoAwayFrame)
	if !ok || ga.LastStreamID != 0x7fffffff || ga.ErrCode != http2.ErrCodeNo || string(ga.DebugData()) != "bye" {
		t.Fatalf("bad GOAWAY: %#v", f)
	}
	dec := hpack.NewDecoder(4096, nil)
	for _, want := range []struct {
		id     uint32
		fields int
	}{{5, 4}, {7, 2}} {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		hf, ok := f.(*http2.HeadersFrame)
		if !ok || hf.StreamID != want.id || !hf.StreamEnded() || !hf.HeadersEnded() {
			t.Fatalf("bad trailers frame: %#v", f)
		}
		fields, err := dec.DecodeFull(hf.HeaderBlockFragment())
		if err != nil {
			t.Fatal(err)
		}
		if len(fields) != want.fields {
			t.Fatalf("stream %d: %d fields, want %d: %v", want.id, len(fields), want.fields, fields)
		}
		status := ""
		for _, f := range fields {
			if f.Name == "grpc-status" {
				status = f.Value
			}
		}
		if status != "14" {
			t.Fatalf("grpc-status %q, want 14", status)
		}
	}
	// Encoding a fresh field must still be index 62 for the decoder: the
	// trailers added nothing to its dynamic table.
	var probe bytes.Buffer
	enc := hpack.NewEncoder(&probe)
	_ = enc.WriteField(hpack.HeaderField{Name: "x-probe", Value: "1"})
	fields, err := dec.DecodeFull(probe.Bytes())
	if err != nil || len(fields) != 1 {
		t.Fatalf("decoder state disturbed: %v %v", fields, err)
	}
}
