package proxy

import "encoding/binary"

// HTTP/2 frame types and flags the tunnel looks at (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameGoAway       = 0x7
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	frameHeaderLen = 9
)

// clientPreface opens every HTTP/2 connection (RFC 9113 §3.4).
const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

type frameHeader struct {
	length   uint32
	typ      uint8
	flags    uint8
	streamID uint32
}

func parseFrameHeader(b []byte) frameHeader {
	return frameHeader{
		length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		typ:      b[3],
		flags:    b[4],
		streamID: binary.BigEndian.Uint32(b[5:9]) & 0x7fffffff,
	}
}

func appendFrameHeader(dst []byte, h frameHeader) []byte {
	return append(dst, byte(h.length>>16), byte(h.length>>8), byte(h.length), h.typ, h.flags,
		byte(h.streamID>>24), byte(h.streamID>>16), byte(h.streamID>>8), byte(h.streamID))
}

// frameScanner follows frame boundaries in one direction of an HTTP/2 byte
// stream without copying it: bytes pass through untouched, and only frames
// the caller wants are collected and handed to onFrame when complete.
type frameScanner struct {
	skip      int // bytes of client preface still to pass
	hdr       [frameHeaderLen]byte
	hdrN      int
	cur       frameHeader
	remaining uint32
	collect   bool
	payload   []byte

	want    func(h frameHeader) bool
	onFrame func(h frameHeader, payload []byte)
}

// scan consumes p and returns how many bytes it walked: all of p, or, with
// stopAtBoundary, the bytes up to the end of the first frame that completes.
func (s *frameScanner) scan(p []byte, stopAtBoundary bool) int {
	i := 0
	for i < len(p) {
		if s.skip > 0 {
			n := min(s.skip, len(p)-i)
			s.skip -= n
			i += n
			if s.skip == 0 && stopAtBoundary {
				return i
			}
			continue
		}
		if s.hdrN < frameHeaderLen {
			n := copy(s.hdr[s.hdrN:], p[i:])
			s.hdrN += n
			i += n
			if s.hdrN < frameHeaderLen {
				return i
			}
			s.cur = parseFrameHeader(s.hdr[:])
			s.remaining = s.cur.length
			s.collect = s.want != nil && s.want(s.cur)
			s.payload = s.payload[:0]
		}
		n := min(int(s.remaining), len(p)-i)
		if s.collect {
			s.payload = append(s.payload, p[i:i+n]...)
		}
		i += n
		s.remaining -= uint32(n)
		if s.remaining == 0 {
			s.hdrN = 0
			if s.onFrame != nil {
				s.onFrame(s.cur, s.payload)
			}
			if stopAtBoundary {
				return i
			}
		}
	}
	return i
}

// atBoundary reports whether the next byte starts a new frame, which is the
// only place another frame may be injected.
func (s *frameScanner) atBoundary() bool { return s.skip == 0 && s.hdrN == 0 }

// headerBlockFragment strips padding and priority fields from a HEADERS
// frame's payload (RFC 9113 §6.2). It returns false for a malformed frame.
func headerBlockFragment(h frameHeader, payload []byte) ([]byte, bool) {
	p := payload
	pad := 0
	if h.flags&flagPadded != 0 {
		if len(p) < 1 {
			return nil, false
		}
		pad = int(p[0])
		p = p[1:]
	}
	if h.flags&flagPriority != 0 {
		if len(p) < 5 {
			return nil, false
		}
		p = p[5:]
	}
	if pad > len(p) {
		return nil, false
	}
	return p[:len(p)-pad], true
}
