package e2e

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"
)

// e2eSerial is the first call of a test that does not run alongside the
// parallel ones: every test here starts processes, so `make unit` (-short)
// skips it. (etcd's own e2e tests begin with BeforeTest for the same reason.)
func e2eSerial(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: starts etcd, shim or client processes")
	}
}

// e2eParallel is the first call of a test that may run alongside the
// others: skipped under -short, then parallel.
func e2eParallel(t *testing.T) {
	t.Helper()
	e2eSerial(t)
	t.Parallel()
}

// send makes req with client (http.DefaultClient if nil) and returns the
// answer with its body, read and closed; a request that gets no answer
// fails the test. A body cut short is returned as far as it came.
func send(t *testing.T, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// getStatus GETs url with client (http.DefaultClient if nil) and returns
// the status; a request that gets no answer fails the test.
func getStatus(t *testing.T, client *http.Client, url string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := send(t, client, req)
	return resp.StatusCode
}

// lockedBuffer is a bytes.Buffer a test may read while a process it
// started writes to it (exec copies a pipe on its own goroutine).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
