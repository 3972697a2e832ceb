package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// serveHealth answers with the member's own /health (so etcd's quorum and
// alarm checks still count), asked of the member requests go to now; when
// no member answers it reports the shim's view with a reason.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.HealthTimeout+time.Second)
	defer cancel()
	u := *s.pool.Current()
	u.Path = "/health"
	u.RawQuery = r.URL.RawQuery
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	resp, err := s.pool.HTTPClient().Do(req)
	if err == nil {
		defer resp.Body.Close()
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
		if rerr == nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable) {
			if ct := resp.Header.Get("Content-Type"); ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(body)
			return
		}
		if rerr != nil {
			err = rerr
		}
	}
	reason := "no upstream member answered"
	if err != nil {
		reason += ": " + err.Error()
	}
	if errs := s.pool.LastErrors(); len(errs) > 0 {
		var parts []string
		for ep, e := range errs {
			parts = append(parts, ep+": "+e)
		}
		reason += " (" + strings.Join(parts, "; ") + ")"
	}
	s.pool.requestProbe()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]string{"health": "false", "reason": reason})
}
