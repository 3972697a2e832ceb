package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/etcdshim/etcdshim/upstream"
	"go.uber.org/zap"
)

// serveHealth answers /health in etcd 3.4's shape, judged on the member
// requests go to now (upstream.Pool.CheckHealth): 200 {"health":"true"}; 503
// {"health":"false"} when it has no leader, an active alarm (?exclude=NOSPACE
// ignores that one) or a failing quorum read; 503 with a "reason" when no
// member answers at all.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET,HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.HealthTimeout)
	defer cancel()
	err := s.pool.CheckHealth(ctx, r.URL.Query()["exclude"])
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"health":"true"}`))
	case errors.Is(err, upstream.ErrNoUpstream):
		s.pool.RequestProbe()
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"health": "false", "reason": s.pool.UnavailableReason()})
	default:
		s.log.Debug("member unhealthy", zap.Error(err))
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("{\"health\":\"false\"}\n"))
	}
}
