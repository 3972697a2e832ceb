package proxy

import (
	"bytes"
	"context"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// BenchmarkClientScan measures the tunnel's per-request work on the client
// side: walking frame headers and decoding one request's header block.
func BenchmarkClientScan(b *testing.B) {
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/etcdserverpb.KV/Range"},
		{":authority", "127.0.0.1:2379"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := hdr.Bytes()
	var stream bytes.Buffer
	fr := http2.NewFramer(&stream, nil)
	for id := uint32(1); id < 200; id += 2 {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true})
		_ = fr.WriteData(id, true, make([]byte, 40))
	}
	data := stream.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		t := newTunnel(nil, nopLogger, newMetrics(nil))
		t.cScan.skip = 0
		t.cScan.scan(data, false)
	}
}

// BenchmarkPassThroughCheck is a unary gRPC call through the shim's tunnel
// against the same call direct to the in-process server (the split's and the
// tunnel's whole cost).
func BenchmarkPassThroughCheck(b *testing.B) {
	t := &testing.T{}
	member := startFakeMember(t)
	shim := startTestShim(t, member.addr)
	for _, target := range []struct{ name, addr string }{{"direct", member.addr}, {"shim", shim.addr}} {
		b.Run(target.name, func(b *testing.B) {
			hc := healthpb.NewHealthClient(dialShim(t, target.addr))
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
