package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/etcdshim/etcdshim/upstream"
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
	pool    *upstream.Pool
	log     *zap.Logger
	timeout time.Duration
}

// NewAdmin serves the admin interface for pool; timeout bounds a POST /drain.
// Its calls to the members run as the pool's identity (Pool.SetIdentity):
// with auth on, 3.5 and later members answer Status and MemberList only to
// an authenticated user, and MoveLeader only to one with the root role.
func NewAdmin(pool *upstream.Pool, timeout time.Duration, log *zap.Logger) *Admin {
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
	// LeaderMoveStarted and LeaderMoveEnded frame the MoveLeader call; the
	// old leader refused proposals for a part of it (upstream.Pool.MoveLeader).
	LeaderMoveStarted time.Time `json:"leaderMoveStarted,omitzero"`
	LeaderMoveEnded   time.Time `json:"leaderMoveEnded,omitzero"`
	// InFlight is what the shim still had on the member when answering.
	InFlight upstream.InFlight `json:"inFlight"`
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
	mu, err := a.pool.Member(member)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rep := DrainReport{Member: mu.String()}
	code := http.StatusOK
	switch method {
	case http.MethodPost:
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		a.log.Info("drain requested", zap.String("member", rep.Member), zap.String("remote", r.RemoteAddr))
		if mv, err := a.pool.MoveLeader(ctx, member); err != nil {
			rep.LeaderError = err.Error()
			a.log.Warn("could not move leadership away before the drain; etcd transfers it itself when it stops gracefully",
				zap.String("member", rep.Member), zap.Error(err))
		} else if mv.To != 0 {
			rep.LeaderMovedTo = fmt.Sprintf("%x", mv.To)
			rep.LeaderMoveStarted, rep.LeaderMoveEnded = mv.Started, mv.Ended
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
		rep.InFlight = a.pool.InFlightOn(member)
	case http.MethodGet, http.MethodHead:
		rep.InFlight = a.pool.InFlightOn(member)
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
