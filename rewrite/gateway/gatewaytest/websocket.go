package gatewaytest

import (
	"net/http"
	"strings"
	"testing"

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
