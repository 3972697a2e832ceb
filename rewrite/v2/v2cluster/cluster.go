package v2cluster

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Upstream is the proxy's connection picker.
type Upstream interface {
	ClientConn() grpc.ClientConnInterface
}

// Options configure the cluster endpoints.
type Options struct {
	// AdvertiseClientURLs are this shim's client URLs.
	AdvertiseClientURLs []string
	// MemberShimURLs maps a member name or member client URL to that
	// member's shim URLs, '|'-separated.
	MemberShimURLs map[string]string
	// StoreStats returns the v2 store counters for /v2/stats/store; nil
	// reports zeros.
	StoreStats func() StoreStats
	// Token returns the request's context carrying its v3 token (from its
	// v2 credentials); nil means anonymous.
	Token func(r *http.Request) (context.Context, error)
	// Limits bound one request's upstream calls and its body.
	Limits v2edge.Limits
	Logger *zap.Logger
}

// Handler serves /v2/members, /v2/machines and /v2/stats/.
type Handler struct {
	opts    Options
	up      Upstream
	started time.Time

	mu          sync.Mutex
	removed     map[uint64]bool // members this shim removed: 410 on a second remove, as 3.4
	leader      uint64
	leaderSince time.Time
}

// New returns the handler.
func New(opts Options, up Upstream) *Handler {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	opts.Limits = opts.Limits.OrDefaults()
	return &Handler{opts: opts, up: up, started: time.Now(), removed: map[uint64]bool{}}
}

// serve answers one method of an endpoint.
type serve func(h *Handler, w http.ResponseWriter, r *http.Request)

// endpoints are the cluster endpoints but /v2/members (members.go), with
// the methods each serves.
var endpoints = map[string]*v2edge.Router[serve]{
	"/v2/machines": v2edge.NewRouter(
		v2edge.On(http.MethodGet, serve((*Handler).serveMachines)),
		v2edge.On(http.MethodHead, serve((*Handler).serveMachines))),
	"/v2/stats/self":   v2edge.NewRouter(v2edge.On(http.MethodGet, serve((*Handler).serveStatsSelf))),
	"/v2/stats/leader": v2edge.NewRouter(v2edge.On(http.MethodGet, serve((*Handler).serveStatsLeader))),
	"/v2/stats/store":  v2edge.NewRouter(v2edge.On(http.MethodGet, serve((*Handler).serveStatsStore))),
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/v2/members" || strings.HasPrefix(p, "/v2/members/") {
		h.serveMembers(w, r)
		return
	}
	routes, ok := endpoints[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if f, ok := routes.Find(w, r); ok {
		f(h, w, r)
	}
}

// member is 3.4's httptypes.Member.
type member struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
}

func (h *Handler) ctx(r *http.Request) (context.Context, context.CancelFunc, error) {
	parent := r.Context()
	if h.opts.Token != nil {
		var err error
		if parent, err = h.opts.Token(r); err != nil {
			return nil, nil, err
		}
	}
	ctx, cancel := h.opts.Limits.Bound(parent)
	return ctx, cancel, nil
}

func (h *Handler) memberList(ctx context.Context) (*pb.MemberListResponse, error) {
	// A local read, as 3.4's v2 listing: it must answer without quorum.
	return etcdrpc.NewClusterClient(h.up.ClientConn()).MemberList(ctx, &pb.MemberListRequest{})
}

// toV2 converts a v3 member, advertising shim URLs instead of the member's.
func (h *Handler) toV2(m *pb.Member) member {
	out := member{ID: idString(m.ID), Name: m.Name, PeerURLs: nonNil(m.PeerURLs), ClientURLs: []string{}}
	if m.Name == "" && len(m.ClientURLs) == 0 {
		return out // not started yet: 3.4 lists it with no client URLs
	}
	out.ClientURLs = h.shimURLsFor(m)
	return out
}

func (h *Handler) shimURLsFor(m *pb.Member) []string {
	if v, ok := h.opts.MemberShimURLs[m.Name]; ok && m.Name != "" {
		return splitURLs(v)
	}
	for _, cu := range m.ClientURLs {
		if v, ok := h.opts.MemberShimURLs[cu]; ok {
			return splitURLs(v)
		}
	}
	// The own member, and members whose shim is unknown: this shim reaches
	// them all, and a legacy client must never bypass a shim.
	return append([]string(nil), h.opts.AdvertiseClientURLs...)
}

func splitURLs(v string) []string {
	var out []string
	for _, u := range strings.Split(v, "|") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func idString(id uint64) string { return fmt.Sprintf("%x", id) }

func sortMembers(ms []*pb.Member) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
}
