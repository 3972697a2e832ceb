package gatewaytest

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// WatchURL is the websocket URL of the watch route under prefix ("/v3",
// "/v3beta") of the HTTP(S) server at base.
func WatchURL(base, prefix string) string {
	return "ws" + strings.TrimPrefix(base, "http") + prefix + "/watch"
}

// UpgradeStatus asks the server at base to upgrade its watch route under
// prefix to a websocket, sending header, and returns the status it answers
// (101 when it upgrades); the socket, if opened, is closed again. A request
// that gets no answer fails the test.
func UpgradeStatus(tb testing.TB, base, prefix string, header http.Header) int {
	tb.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(WatchURL(base, prefix), header)
	if conn != nil {
		conn.Close()
	}
	if resp == nil {
		tb.Fatalf("no answer: %v", err)
	}
	return resp.StatusCode
}

// SendOversized sends one text message of size bytes on conn, in frames of
// 32 KiB, as a hostile client would, while the caller reads what the server
// answers; it ends when the message is sent or the server stops taking it,
// and then gives the number of bytes conn took.
func SendOversized(conn *websocket.Conn, size int) <-chan int {
	sent := make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		w, err := conn.NextWriter(websocket.TextMessage)
		if err != nil {
			return
		}
		chunk := []byte(strings.Repeat("x", 32<<10))
		for n < size {
			m, err := w.Write(chunk)
			n += m
			if err != nil {
				return
			}
		}
		_ = w.Close()
	}()
	return sent
}

// ClosedTooBig reads from conn until it ends and reports whether it ended
// with close 1009 (message too big); err is how it ended.
func ClosedTooBig(conn *websocket.Conn, within time.Duration) (bool, error) {
	_ = conn.SetReadDeadline(time.Now().Add(within))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			return errors.As(err, &ce) && ce.Code == websocket.CloseMessageTooBig, err
		}
	}
}

// CreateWatch sends a create request for key on conn and fails tb unless
// the first frame back says the watch was created.
func CreateWatch(tb testing.TB, conn *websocket.Conn, key string) {
	tb.Helper()
	req := `{"create_request":{"key":"` + base64.StdEncoding.EncodeToString([]byte(key)) + `"}}`
	if err := conn.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		tb.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, b, err := conn.ReadMessage(); err != nil || !strings.Contains(string(b), `"created":true`) {
		tb.Fatalf("first frame of a watch on %q: %s (%v), want the created response", key, b, err)
	}
}
