package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/tmc/grpc-websocket-proxy/wsproxy"
	"go.uber.org/zap"
)

// Websocket upgrades are served as etcd's own gateway serves them: through
// grpc-websocket-proxy, which turns the socket into a streaming HTTP request
// to the same handlers (each text frame a line of the request body, each
// line of the answer a text frame). The proxy forwards only Origin and
// Referer from the upgrade request, and the token from a "Bearer, <token>"
// Sec-WebSocket-Protocol or a "token" cookie as Authorization, exactly as
// the member's gateway does, so a client sees the same answers from both.

// newWebsocket serves upgrades with inner (the /v3 or the legacy routes).
func newWebsocket(inner http.Handler, log *zap.Logger) http.Handler {
	return wsproxy.WebsocketProxy(inner,
		// The upgrade is a GET; the streaming routes are POST.
		wsproxy.WithRequestMutator(func(_, out *http.Request) *http.Request {
			out.Method = http.MethodPost
			return out
		}),
		// An answer line (one watch response) may be as large as the
		// member sends; the proxy's default stops at 64 KiB.
		wsproxy.WithMaxRespBodyBufferSize(math.MaxInt32),
		wsproxy.WithLogger(wsLogger{log}),
	)
}

// wsLogger puts the proxy's messages on the gateway's logger. Its warnings
// are all about one client's socket (a reset, a bad handshake), so they are
// logged at debug level, where a client on the internet cannot fill the
// log; its debug messages carry every frame's payload (keys and values) and
// are dropped.
type wsLogger struct{ log *zap.Logger }

func (l wsLogger) Warnln(a ...any) {
	if ce := l.log.Check(zap.DebugLevel, "websocket"); ce != nil {
		ce.Write(zap.String("detail", strings.TrimSuffix(fmt.Sprintln(a...), "\n")))
	}
}

func (wsLogger) Debugln(...any) {}

// serveWebsocket checks an upgrade's Origin and hands it to ws.
func (g *Gateway) serveWebsocket(ws http.Handler, w http.ResponseWriter, r *http.Request) {
	if !g.originAllowed(r) {
		// Browsers do not apply CORS to websockets; without this check any
		// page could open a watch with its visitor's "token" cookie.
		http.Error(w, "etcdshim: websocket origin not allowed by --cors", http.StatusForbidden)
		return
	}
	if g.opts.MaxRequestBytes > 0 {
		// Each message is one request: the same bound (wslimit.go).
		w = limitMessages{ResponseWriter: w, max: g.opts.MaxRequestBytes}
	}
	ws.ServeHTTP(w, r)
}

// originAllowed: clients that are not browsers send no Origin.
func (g *Gateway) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	return origin == "" || g.opts.OriginAllowed == nil || g.opts.OriginAllowed(origin)
}
