package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/etcdshim/etcdshim/internal/ctxtime"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// Admin is the shim's admin interface, served only on --listen-admin-url
// (loopback; never on the client listeners, so a client cannot drain a
// shim):
//
//	POST   /drain  the member is about to stop: move leadership away when
//	               it leads, move every connection and call of the shim off
//	               it, and answer once nothing is in flight there (200) or
//	               after the drain timeout (503, with what is left);
//	DELETE /drain  return the member to rotation now (it also returns by
//	               itself once it stopped and serves again);
//	GET    /drain  the drain state and what is in flight per member;
//	GET    /prestop  POST /drain for Kubernetes preStop hooks, whose httpGet
//	               can only GET.
//
// ?member=<client URL> names another member than the sidecar's own.
type Admin struct {
	pool    *Pool
	log     *zap.Logger
	timeout time.Duration
}

// NewAdmin serves the admin interface for pool; timeout bounds a POST /drain.
func NewAdmin(pool *Pool, timeout time.Duration, log *zap.Logger) *Admin {
	return &Admin{pool: pool, log: log, timeout: timeout}
}

// DrainReport is the answer to /drain.
type DrainReport struct {
	Member   string `json:"member"`
	Draining bool   `json:"draining"`
	// LeaderMovedTo is the member id leadership moved to ("" when the
	// member did not lead); LeaderError says why it could not be moved.
	LeaderMovedTo string `json:"leaderMovedTo,omitempty"`
	LeaderError   string `json:"leaderError,omitempty"`
	// InFlight is what the shim still had on the member when answering.
	InFlight InFlight `json:"inFlight"`
	// Tunnels are the relayed client connections per member.
	Tunnels map[string]int `json:"tunnels"`
	Error   string         `json:"error,omitempty"`
}

func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	switch {
	case r.URL.Path == "/prestop" && r.Method == http.MethodGet:
		method = http.MethodPost
	case r.URL.Path != "/drain":
		http.NotFound(w, r)
		return
	}
	var member *url.URL
	if m := r.URL.Query().Get("member"); m != "" {
		u, err := url.Parse(m)
		if err != nil {
			http.Error(w, "member: "+err.Error(), http.StatusBadRequest)
			return
		}
		member = u
	}
	ep, err := a.pool.endpointFor(member)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rep := DrainReport{Member: ep.url.String()}
	code := http.StatusOK
	switch method {
	case http.MethodPost:
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		a.log.Info("drain requested", zap.String("member", rep.Member), zap.String("remote", r.RemoteAddr))
		if to, err := a.moveLeader(ctx, ep); err != nil {
			rep.LeaderError = err.Error()
			a.log.Warn("could not move leadership away before the drain; etcd transfers it itself when it stops gracefully",
				zap.String("member", rep.Member), zap.Error(err))
		} else if to != 0 {
			rep.LeaderMovedTo = fmt.Sprintf("%x", to)
		}
		in, err := a.pool.Drain(ctx, member)
		rep.InFlight = in
		if err != nil {
			rep.Error = err.Error()
			code = http.StatusServiceUnavailable
		}
	case http.MethodDelete:
		if err := a.pool.Undrain(member); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rep.InFlight = ep.inFlight()
	case http.MethodGet, http.MethodHead:
		rep.InFlight = ep.inFlight()
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	rep.Draining = a.pool.Draining(member)
	rep.Tunnels = a.pool.TunnelCounts()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(rep)
}

// moveLeader transfers leadership to a healthy voting member when ep's
// member leads, as `etcdctl move-leader` does, while it still serves: a
// leader that learns of its shutdown from SIGTERM has stopped serving, and
// proposals through it can time out with an unknown outcome. It returns the
// new leader's id, or 0 when the member did not lead.
func (a *Admin) moveLeader(ctx context.Context, ep *endpoint) (uint64, error) {
	mc := etcdrpc.NewMaintenanceClient(ep.conn)
	st, err := mc.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return 0, fmt.Errorf("status of %s: %w", ep.url, err)
	}
	self := st.GetHeader().GetMemberId()
	if st.Leader != self {
		return 0, nil
	}
	target, err := a.follower(ctx, ep, self)
	if err != nil {
		return 0, err
	}
	if _, err := mc.MoveLeader(ctx, &pb.MoveLeaderRequest{TargetID: target}); err != nil {
		return 0, fmt.Errorf("move-leader to %x: %w", target, err)
	}
	a.log.Info("leadership moved", zap.String("from", fmt.Sprintf("%x", self)), zap.String("to", fmt.Sprintf("%x", target)))
	// The other members' shims send their writes to the leader they learnt
	// at their last probe (leader.go): give them two probe intervals (the
	// same --health-interval is assumed) to learn the new one, so that no
	// write of theirs is in flight on this member when it stops (a 3.4
	// member closes its connections with the calls on them).
	ctxtime.Sleep(ctx, 2*a.pool.opts.HealthInterval)
	return target, nil
}

// follower picks the member to lead next: the first other configured
// endpoint that is healthy and votes; without one, any other voting member.
func (a *Admin) follower(ctx context.Context, ep *endpoint, self uint64) (uint64, error) {
	for _, other := range a.pool.eps {
		if other == ep || !other.healthy.Load() {
			continue
		}
		st, err := etcdrpc.NewMaintenanceClient(other.conn).Status(ctx, &pb.StatusRequest{})
		if err != nil || st.IsLearner || st.GetHeader().GetMemberId() == self || len(st.Errors) > 0 {
			continue
		}
		return st.GetHeader().GetMemberId(), nil
	}
	ml, err := etcdrpc.NewClusterClient(ep.conn).MemberList(ctx, &pb.MemberListRequest{})
	if err != nil {
		return 0, fmt.Errorf("member list: %w", err)
	}
	for _, m := range ml.Members {
		if m.ID != self && !m.IsLearner && m.Name != "" {
			return m.ID, nil
		}
	}
	return 0, errors.New("no other voting member to lead")
}
