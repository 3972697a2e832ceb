package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A streaming route's body (POST /v3/watch, /v3/lease/keepalive) is a
// sequence of JSON requests that may last as long as the client keeps the
// stream: a keep-alive stream sends one request per lease per interval for
// days. --max-request-bytes bounds each request, as it bounds each
// websocket message (wslimit.go) and as the member bounds each gRPC
// message; it once capped the whole body, which ended a well-behaved
// keep-alive stream silently after 3 MiB (112,000 keep-alives; 3.4 has no
// bound). grpc-gateway decodes one request at a time, so holding at most
// one request is what the bound buys.

// messageLimit reads a stream of JSON values and fails the read on which
// one value (with the whitespace before it) passes max bytes. It follows
// only what it needs to find where a value ends: nesting, strings and their
// escapes; the decoder behind it judges the syntax.
type messageLimit struct {
	r      io.ReadCloser
	max    int64
	n      int64 // bytes of the current value so far
	depth  int
	inStr  bool
	escape bool
	// tooBig is called once, when a value passes max.
	tooBig func()
	err    error
}

func (m *messageLimit) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.r.Read(p)
	for i, c := range p[:n] {
		m.n++
		if m.n > m.max {
			m.err = fmt.Errorf("a request in the stream is larger than %d bytes", m.max)
			m.r.Close()
			m.tooBig()
			// The bytes of the values before it are still decoded.
			return i, m.err
		}
		switch {
		case m.inStr:
			switch {
			case m.escape:
				m.escape = false
			case c == '\\':
				m.escape = true
			case c == '"':
				m.inStr = false
				if m.depth == 0 {
					m.n = 0
				}
			}
		case c == '"':
			m.inStr = true
		case c == '{' || c == '[':
			m.depth++
		case c == '}' || c == ']':
			if m.depth > 0 {
				m.depth--
			}
			if m.depth == 0 {
				m.n = 0
			}
		}
	}
	return n, err
}

func (m *messageLimit) Close() error { return m.r.Close() }

// tooBigKey marks a streaming request's context; its value is set when a
// request in the stream passed the bound.
type tooBigKey struct{}

type tooBigMark struct {
	max    int64
	passed atomic.Bool // set by the body's reader, read by the answer's writer
}

// limitStreamRequests bounds each request of r's streaming body by max bytes. A
// request past the bound cancels the stream (the member's side ends at
// once, nothing after it is sent); the stream's answer then ends with
// ResourceExhausted (streamTooBig), the code a gRPC server gives a message
// over its limit and the gateway's 413 for a unary body.
func limitStreamRequests(r *http.Request, max int64) *http.Request {
	ctx, cancel := context.WithCancel(r.Context())
	mark := &tooBigMark{max: max}
	ctx = context.WithValue(ctx, tooBigKey{}, mark)
	r = r.WithContext(ctx)
	r.Body = &messageLimit{r: r.Body, max: max, tooBig: func() {
		mark.passed.Store(true)
		cancel()
	}}
	// ctx is released with the request's own context, when the request ends.
	return r
}

// streamTooBig is the status that ends a stream canceled by limitStreamRequests,
// or nil.
func streamTooBig(ctx context.Context) *status.Status {
	mark, _ := ctx.Value(tooBigKey{}).(*tooBigMark)
	if mark == nil || !mark.passed.Load() {
		return nil
	}
	return status.Newf(codes.ResourceExhausted, "a request in the stream is larger than %d bytes", mark.max)
}
