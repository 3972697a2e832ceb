package proxy

import (
	"bytes"
	"runtime"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestTunnelHeaderStringBound: a client that announces a 64 MiB header
// value and sends 16 MiB of it in CONTINUATION frames costs the tunnel's
// bookkeeping less than 4 MiB (it once held every byte, twice over while
// its buffer grew); the member, which the bytes are relayed to, judges the
// header. A well-behaved request with a 512 KiB value is still followed.
func TestTunnelHeaderStringBound(t *testing.T) {
	frame := func(typ, flags uint8, id uint32, payload []byte) []byte {
		out := appendFrameHeader(nil, frameHeader{length: uint32(len(payload)), typ: typ, flags: flags, streamID: id})
		return append(out, payload...)
	}
	block := func(value int) []byte {
		var b bytes.Buffer
		enc := hpack.NewEncoder(&b)
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":path", "/etcdserverpb.KV/Range"}, {"content-type", "application/grpc"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		// A literal field without indexing: name "x", then the value's
		// length as a 7-bit-prefix integer (RFC 7541 5.1).
		b.Write([]byte{0x00, 0x01, 'x', 0x7f})
		for v := uint64(value - 127); ; v >>= 7 {
			if v < 128 {
				b.WriteByte(byte(v))
				break
			}
			b.WriteByte(byte(v&0x7f) | 0x80)
		}
		return b.Bytes()
	}
	chunk := bytes.Repeat([]byte("a"), 16<<10)

	t.Run("hostile", func(t *testing.T) {
		tn := newTunnel(nil, nopLogger, newMetrics(nil))
		tn.cScan.scan([]byte(clientPreface), false)
		tn.cScan.scan(frame(frameHeaders, 0, 1, block(64<<20)), false)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		cont := frame(frameContinuation, 0, 1, chunk)
		for sent := 0; sent < 16<<20; sent += len(chunk) {
			tn.cScan.scan(cont, false)
		}
		runtime.ReadMemStats(&after)
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 4<<20 {
			t.Errorf("following 16 MiB of one header value allocated %d MiB", grown>>20)
		}
		if !tn.decBroken {
			t.Error("the tunnel still decodes a header value past the bound")
		}
	})
	t.Run("large but fine", func(t *testing.T) {
		tn := newTunnel(nil, nopLogger, newMetrics(nil))
		tn.cScan.scan([]byte(clientPreface), false)
		value := 512 << 10
		tn.cScan.scan(frame(frameHeaders, 0, 1, block(value)), false)
		for sent := 0; sent < value; sent += len(chunk) {
			flags := uint8(0)
			if sent+len(chunk) >= value {
				flags = flagEndHeaders
			}
			tn.cScan.scan(frame(frameContinuation, flags, 1, chunk), false)
		}
		if tn.decBroken || len(tn.streams) != 1 || tn.ctype != "application/grpc" {
			t.Errorf("a 512 KiB header value: broken %v, %d streams, content-type %q; want the stream followed", tn.decBroken, len(tn.streams), tn.ctype)
		}
	})
}
