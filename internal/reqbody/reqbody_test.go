package reqbody

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// endless is a body that never ends: Read must stop at the limit.
type endless struct{ read int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.read += int64(len(p))
	return len(p), nil
}

func TestRead(t *testing.T) {
	cases := []struct {
		name    string
		body    io.Reader
		length  int64
		max     int64
		want    string
		tooBig  bool
		maxRead int64
	}{
		{name: "within", body: strings.NewReader(`{"a":1}`), length: 7, max: 7, want: `{"a":1}`},
		{name: "declared too long", body: &endless{}, length: 1 << 30, max: 10, tooBig: true, maxRead: 0},
		{name: "chunked too long", body: &endless{}, length: -1, max: 10, tooBig: true, maxRead: 64 << 10},
		{name: "empty", body: strings.NewReader(""), length: 0, max: 10, want: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", "/", c.body)
			r.ContentLength = c.length
			b, err := Read(r, c.max)
			if c.tooBig {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("err = %v", err)
				}
				if e, ok := c.body.(*endless); ok && e.read > c.maxRead {
					t.Fatalf("read %d bytes of a body over the limit", e.read)
				}
				return
			}
			if err != nil || string(b) != c.want {
				t.Fatalf("Read = %q %v", b, err)
			}
		})
	}
}
