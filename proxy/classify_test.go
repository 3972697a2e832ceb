package proxy

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// countingConn is a scriptConn that counts the bytes taken from it.
type countingConn struct {
	scriptConn
	read int
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.scriptConn.Read(p)
	c.read += n
	return n, err
}

// TestClassifyBound: a TLS HTTP/2 client that sends 8 MiB of frames without
// ever sending request headers is closed after a bounded read (not buffered
// while the shim waits to classify it), with one log line.
func TestClassifyBound(t *testing.T) {
	ping := []byte("\x00\x00\x08\x06\x00\x00\x00\x00\x00" + "12345678")
	data := []byte(clientPreface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00")
	for len(data) < 8<<20 {
		data = append(data, ping...)
	}
	core, logs := observer.New(zap.DebugLevel)
	s := &Server{ctx: context.Background(), log: zap.New(core), m: newMetrics(nil)}
	c := &countingConn{scriptConn: scriptConn{chunks: [][]byte{data}, silence: true}}
	kind, buf, _, err := s.sniff(c, true)
	if kind != connClose {
		t.Fatalf("classified as %v holding %d bytes (err %v); want the connection closed", kind, len(buf), err)
	}
	if c.read > 1<<20 {
		t.Fatalf("read %d bytes of a connection that never sent request headers; want at most 1 MiB", c.read)
	}
	if n := logs.FilterMessageSnippet("classification bound").Len(); n != 1 {
		t.Fatalf("%d log lines about the bound, want 1: %v", n, logs.All())
	}
}
