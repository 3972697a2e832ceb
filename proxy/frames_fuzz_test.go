package proxy

import (
	"testing"

	"go.uber.org/zap"
)

var nopLogger = zap.NewNop()

// FuzzFrameScanner feeds arbitrary client bytes, split at an arbitrary
// point, through the tunnel's client-side bookkeeping: it must never panic,
// and the frames it sees must not depend on how the bytes were chunked.
func FuzzFrameScanner(f *testing.F) {
	f.Add([]byte(clientPreface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), 3)
	f.Add(append([]byte(clientPreface), unavailableTrailers(1, true)...), 30)
	f.Add(append([]byte(clientPreface), goAwayFrame(5, "x")...), 25)
	f.Add([]byte(clientPreface+"\x00\x00\x05\x01\x2d\x00\x00\x00\x01\x09\x00\x00\x00\x00"), 28)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		if split < 0 {
			split = -split
		}
		split %= len(data) + 1
		whole := newTunnel(nil, nopLogger, newMetrics(nil))
		var wholeFrames []frameHeader
		on := whole.cScan.onFrame
		whole.cScan.onFrame = func(h frameHeader, p []byte) { wholeFrames = append(wholeFrames, h); on(h, p) }
		whole.cScan.scan(data, false)

		parts := newTunnel(nil, nopLogger, newMetrics(nil))
		var partFrames []frameHeader
		on2 := parts.cScan.onFrame
		parts.cScan.onFrame = func(h frameHeader, p []byte) { partFrames = append(partFrames, h); on2(h, p) }
		parts.cScan.scan(data[:split], false)
		parts.cScan.scan(data[split:], false)

		if len(wholeFrames) != len(partFrames) {
			t.Fatalf("%d frames whole, %d split at %d", len(wholeFrames), len(partFrames), split)
		}
		for i := range wholeFrames {
			if wholeFrames[i] != partFrames[i] {
				t.Fatalf("frame %d differs: %+v vs %+v", i, wholeFrames[i], partFrames[i])
			}
		}
		if len(whole.streams) != len(parts.streams) || whole.decBroken != parts.decBroken {
			t.Fatalf("stream tracking depends on chunking: %d/%v vs %d/%v",
				len(whole.streams), whole.decBroken, len(parts.streams), parts.decBroken)
		}
	})
}
