package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/promchild"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2auth"
	"github.com/gorilla/websocket"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	electiongw "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb/gw"
	lockgw "go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb/gw"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// LegacyRecorder notes which clients still use legacy prefixes.
type LegacyRecorder interface {
	Observe(r *http.Request, surface, user string)
}

// Options configure the gateway.
type Options struct {
	// LegacyPrefixes are the legacy prefixes served ("/v3beta", "/v3alpha").
	LegacyPrefixes []string
	// LegacyMode is rewrite (answer in place), redirect (308 to /v3) or off (404).
	LegacyMode string
	// MaxRequestBytes caps a request body (413 above it).
	MaxRequestBytes int64
	// Passthrough answers /v3 routes the shim does not know (newer APIs).
	Passthrough http.Handler
	// MarkAnonymous gives requests without credentials a token the member
	// does not know; set it when the shim presents a client certificate to
	// the members, which would otherwise authenticate them as the shim.
	MarkAnonymous bool
	// OriginAllowed says whether a browser page from origin may open a
	// websocket (the --cors list); nil allows every origin, as etcd does.
	OriginAllowed func(origin string) bool
	Registerer    prometheus.Registerer
	Legacy        LegacyRecorder
	Logger        *zap.Logger
}

// Gateway serves /v3, /v3beta and /v3alpha.
type Gateway struct {
	opts    Options
	v3      muxSet
	legacy  muxSet
	wsV3    http.Handler // websocket upgrades on /v3
	wsOld   http.Handler // websocket upgrades on the legacy prefixes
	legacyN *prometheus.CounterVec
	legacyC *promchild.Cache[legacyRoute, prometheus.Counter] // legacyN's children
}

type legacyRoute struct{ prefix, route string }

// muxSet routes a known path to a mux holding only its service's handlers:
// grpc-gateway's mux tries every registered pattern in turn (allocating and
// calling errors.As for each miss), and with all eight services registered
// kv/range came ~50th. Unknown paths go to the mux with everything, so
// routing errors (404, 405) are the same as before.
type muxSet struct {
	all     *runtime.ServeMux
	byRoute map[string]*runtime.ServeMux
}

func (m *muxSet) mux(path string) *runtime.ServeMux {
	if mx := m.byRoute[path]; mx != nil {
		return mx
	}
	return m.all
}

// service registers one service's handlers on a mux.
type service struct {
	prefixes []string // routes starting with one belong to the service
	register func(context.Context, *runtime.ServeMux) error
}

func newMuxSet(services []service, opts ...runtime.ServeMuxOption) (muxSet, error) {
	ctx := context.Background()
	m := muxSet{all: runtime.NewServeMux(opts...), byRoute: map[string]*runtime.ServeMux{}}
	matched := map[string]int{} // route → length of the prefix that claimed it
	for _, svc := range services {
		if err := svc.register(ctx, m.all); err != nil {
			return m, fmt.Errorf("registering gateway handlers: %w", err)
		}
		mx := runtime.NewServeMux(opts...)
		if err := svc.register(ctx, mx); err != nil {
			return m, fmt.Errorf("registering gateway handlers: %w", err)
		}
		// The longest prefix wins: /v3/kv/lease/ is the lease service's.
		for route := range knownRoutes {
			for _, p := range svc.prefixes {
				if strings.HasPrefix(route, p) && len(p) > matched[route] {
					m.byRoute[route], matched[route] = mx, len(p)
				}
			}
		}
	}
	return m, nil
}

// streamingRoutes take a stream of JSON messages in the request body.
var streamingRoutes = map[string]bool{"/v3/watch": true, "/v3/lease/keepalive": true}

// New registers etcd's gateway handlers on connections from cc.
func New(opts Options, cc grpc.ClientConnInterface) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	g := &Gateway{opts: opts}
	common := []runtime.ServeMuxOption{
		runtime.WithIncomingHeaderMatcher(forwardHeader),
		runtime.WithStreamErrorHandler(clientStreamError),
	}
	if opts.MarkAnonymous {
		common = append(common, runtime.WithMetadata(anonymousToken))
	}
	// In the order they were always registered on the full muxes.
	services := []service{
		{[]string{"/v3/kv/"}, func(ctx context.Context, mux *runtime.ServeMux) error {
			return gw.RegisterKVHandlerClient(ctx, mux, etcdrpc.NewKVClient(cc))
		}},
		{[]string{"/v3/watch"}, func(ctx context.Context, mux *runtime.ServeMux) error {
			return gw.RegisterWatchHandlerClient(ctx, mux, etcdrpc.NewWatchClient(cc))
		}},
		{[]string{"/v3/lease/", "/v3/kv/lease/"}, func(ctx context.Context, mux *runtime.ServeMux) error {
			return gw.RegisterLeaseHandlerClient(ctx, mux, etcdrpc.NewLeaseClient(cc))
		}},
		{[]string{"/v3/cluster/"}, func(ctx context.Context, mux *runtime.ServeMux) error {
			return gw.RegisterClusterHandlerClient(ctx, mux, etcdrpc.NewClusterClient(cc))
		}},
		{[]string{"/v3/maintenance/"}, func(ctx context.Context, mux *runtime.ServeMux) error {
			return gw.RegisterMaintenanceHandlerClient(ctx, mux, etcdrpc.NewMaintenanceClient(cc))
		}},
		{[]string{"/v3/auth/"}, func(ctx context.Context, mux *runtime.ServeMux) error {
			return gw.RegisterAuthHandlerClient(ctx, mux, etcdrpc.NewAuthClient(cc))
		}},
		{[]string{"/v3/lock/"}, func(ctx context.Context, mux *runtime.ServeMux) error {
			return lockgw.RegisterLockHandlerClient(ctx, mux, etcdrpc.NewLockClient(cc))
		}},
		{[]string{"/v3/election/"}, func(ctx context.Context, mux *runtime.ServeMux) error {
			return electiongw.RegisterElectionHandlerClient(ctx, mux, etcdrpc.NewElectionClient(cc))
		}},
	}
	var err error
	if g.v3, err = newMuxSet(services, append(common,
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newMarshaler()),
		runtime.WithRoutingErrorHandler(g.v3RoutingError),
		runtime.WithErrorHandler(v3Error),
	)...); err != nil {
		return nil, err
	}
	if g.legacy, err = newMuxSet(services, append(common[:len(common):len(common)],
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newLegacyMarshaler()),
		runtime.WithErrorHandler(legacyError),
		runtime.WithRoutingErrorHandler(legacyRoutingError),
	)...); err != nil {
		return nil, err
	}
	g.wsV3 = newWebsocket(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.v3.mux(r.URL.Path).ServeHTTP(w, r)
	}), opts.Logger)
	g.wsOld = newWebsocket(http.HandlerFunc(g.serveLegacyRoute), opts.Logger)
	g.legacyN = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "etcdshim_gateway_legacy_requests_total",
		Help: "JSON gateway requests on legacy prefixes (/v3beta, /v3alpha), by prefix and route.",
	}, []string{"prefix", "route"})
	// Every prefix and route label can be remembered: both are bounded.
	g.legacyC = promchild.New(len(opts.LegacyPrefixes)*(len(knownRoutes)+1), func(k legacyRoute) prometheus.Counter {
		return g.legacyN.WithLabelValues(k.prefix, k.route)
	})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(g.legacyN); err != nil {
			return nil, fmt.Errorf("registering gateway metrics: %w", err)
		}
	}
	return g, nil
}

func (g *Gateway) legacyPrefix(path string) string {
	for _, p := range g.opts.LegacyPrefixes {
		if strings.HasPrefix(path, p+"/") {
			return p
		}
	}
	return ""
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	prefix := g.legacyPrefix(r.URL.Path)
	if prefix == "" && !strings.HasPrefix(r.URL.Path, "/v3/") {
		// A legacy prefix that is not configured: as a release without it.
		http.NotFound(w, r)
		return
	}
	if prefix != "" {
		g.serveLegacy(w, r, prefix)
		return
	}
	if websocket.IsWebSocketUpgrade(r) {
		g.serveWebsocket(g.wsV3, w, r)
		return
	}
	r, ok := g.limitBody(w, r, r.URL.Path, false)
	if !ok {
		return
	}
	g.v3.mux(r.URL.Path).ServeHTTP(w, r)
}

func (g *Gateway) serveLegacy(w http.ResponseWriter, r *http.Request, prefix string) {
	rest := strings.TrimPrefix(r.URL.Path, prefix)
	route := "/v3" + rest
	label := strings.TrimPrefix(prefix, "/")
	g.legacyC.Get(legacyRoute{label, routeLabel(route)}).Inc()
	if g.opts.Legacy != nil {
		g.opts.Legacy.Observe(r, label, "")
	}
	switch g.opts.LegacyMode {
	case "off":
		http.NotFound(w, r)
		return
	case "redirect":
		loc := route
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		// 308 keeps the method and body, unlike 301/302.
		http.Redirect(w, r, loc, http.StatusPermanentRedirect)
		return
	}
	upgrade := websocket.IsWebSocketUpgrade(r)
	if !upgrade {
		var ok bool
		if r, ok = g.limitBody(w, r, route, true); !ok {
			return
		}
	}
	// A shallow copy with its own URL: the handlers read the request and
	// never change its headers, so r.Clone's deep copy of them is not needed.
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = route, ""
	r2.URL = &u
	if upgrade {
		g.serveWebsocket(g.wsOld, w, r2)
		return
	}
	g.serveLegacyRoute(w, r2)
}

// knownRoutes bounds the route label's values.
var knownRoutes = map[string]bool{}

func init() {
	for _, r := range []string{
		"/v3/kv/range", "/v3/kv/put", "/v3/kv/deleterange", "/v3/kv/txn", "/v3/kv/compaction",
		"/v3/watch", "/v3/lease/grant", "/v3/lease/revoke", "/v3/kv/lease/revoke", "/v3/lease/keepalive",
		"/v3/lease/timetolive", "/v3/kv/lease/timetolive", "/v3/lease/leases", "/v3/kv/lease/leases",
		"/v3/cluster/member/add", "/v3/cluster/member/remove", "/v3/cluster/member/update",
		"/v3/cluster/member/list", "/v3/cluster/member/promote", "/v3/maintenance/alarm",
		"/v3/maintenance/status", "/v3/maintenance/defragment", "/v3/maintenance/hash",
		"/v3/maintenance/snapshot", "/v3/maintenance/transfer-leadership", "/v3/auth/enable",
		"/v3/auth/disable", "/v3/auth/status", "/v3/auth/authenticate", "/v3/auth/user/add",
		"/v3/auth/user/get", "/v3/auth/user/list", "/v3/auth/user/delete", "/v3/auth/user/changepw",
		"/v3/auth/user/grant", "/v3/auth/user/revoke", "/v3/auth/role/add", "/v3/auth/role/get",
		"/v3/auth/role/list", "/v3/auth/role/delete", "/v3/auth/role/grant", "/v3/auth/role/revoke",
		"/v3/lock/lock", "/v3/lock/unlock", "/v3/election/campaign", "/v3/election/proclaim",
		"/v3/election/leader", "/v3/election/observe", "/v3/election/resign",
	} {
		knownRoutes[r] = true
	}
}

func routeLabel(route string) string {
	if knownRoutes[route] {
		return route
	}
	return "other"
}

// limitBody enforces --max-request-bytes: unary bodies are read up front
// (413 above the limit); each request of a streaming body is bounded as it
// is read (streamlimit.go). route is the request's /v3 route. It returns
// the request to serve, and false when it answered already.
func (g *Gateway) limitBody(w http.ResponseWriter, r *http.Request, route string, legacy bool) (*http.Request, bool) {
	if r.Body == nil || g.opts.MaxRequestBytes <= 0 {
		return r, true
	}
	if streamingRoutes[route] {
		return limitStreamRequests(r, g.opts.MaxRequestBytes), true
	}
	body, err := readBody(r, g.opts.MaxRequestBytes)
	if err == nil && int64(len(body)) <= g.opts.MaxRequestBytes {
		r.Body = io.NopCloser(bytes.NewReader(body))
		return r, true
	}
	msg := fmt.Sprintf("request body larger than %d bytes", g.opts.MaxRequestBytes)
	if err != nil {
		msg = err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	if legacy {
		b, _ := json.Marshal(legacyErr{Error: msg, Message: msg, Code: 8})
		_, _ = w.Write(b)
	} else {
		b, _ := json.Marshal(map[string]any{"code": 8, "message": msg, "details": []any{}})
		_, _ = w.Write(b)
	}
	return r, false
}

// readBody reads at most max+1 bytes of r's body, in one allocation when
// the client sent a Content-Length (io.ReadAll grows its buffer from 512).
func readBody(r *http.Request, max int64) ([]byte, error) {
	n := r.ContentLength
	if n < 0 || n > max {
		return io.ReadAll(io.LimitReader(r.Body, max+1))
	}
	// One byte more than announced, so that a body longer than its
	// Content-Length is still read to max+1 and refused.
	buf := make([]byte, 0, n+1)
	for {
		m, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			if int64(len(buf)) > max {
				return buf, nil
			}
			rest, err := io.ReadAll(io.LimitReader(r.Body, max+1-int64(len(buf))))
			return append(buf, rest...), err
		}
	}
}

// forwardHeader picks the HTTP headers that go on to the member as gRPC
// metadata. etcd reads few: the token (grpc-gateway forwards Authorization
// by itself), Grpc-Metadata-* headers a client sets on purpose (hasleader,
// client-api-version), and grpcgateway-accept, by which a member knows a
// request came through a gateway and ignores the gateway's certificate name
// (auth/store.go). grpc-gateway's default also forwards User-Agent,
// Content-Type, Cookie and the like, which no member reads but each costs an
// HPACK field on both sides per request.
func forwardHeader(key string) (string, bool) {
	switch {
	case key == "Accept":
		return runtime.MetadataPrefix + key, true
	case strings.HasPrefix(key, runtime.MetadataHeaderPrefix):
		return key[len(runtime.MetadataHeaderPrefix):], true
	}
	return "", false
}

// anonymousToken gives requests without an Authorization header a token the
// member does not know, so a member that verifies client certificates never
// authenticates them as the shim's own certificate (see v2auth.AnonymousToken).
func anonymousToken(_ context.Context, r *http.Request) metadata.MD {
	if r.Header.Get("Authorization") != "" {
		return nil
	}
	return metadata.Pairs(rpctypes.TokenFieldNameGRPC, v2auth.AnonymousToken)
}

// v3RoutingError hands /v3 routes the shim does not know to the member, so
// newer APIs are not hidden; wrong methods get 405 as usual.
func (g *Gateway) v3RoutingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	if code == http.StatusNotFound && g.opts.Passthrough != nil {
		g.opts.Passthrough.ServeHTTP(w, r)
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, code)
}

// legacyRoutingError answers as 3.4's gateway: plain-text 404 and 405.
func legacyRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, code int) {
	http.Error(w, http.StatusText(code), code)
}
