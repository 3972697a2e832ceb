package reqbody

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrTooLarge means the body exceeds the limit.
var ErrTooLarge = errors.New("http: request body too large")

// Read returns r's body if it holds at most max bytes. A declared
// Content-Length over max is refused before anything is read.
func Read(r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	if r.ContentLength > max {
		return nil, ErrTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request body: %w", err)
	}
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}
