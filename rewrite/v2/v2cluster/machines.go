package v2cluster

import (
	"net/http"
	"sort"
	"strings"
)

// serveMachines lists every member's (shim) client URL joined by ", ", as
// python-etcd and Patroni read it to find endpoints.
func (h *Handler) serveMachines(w http.ResponseWriter, r *http.Request) {
	ml, err := h.members(r)
	if err != nil {
		h.writeUpstreamError(w, err)
		return
	}
	seen := map[string]bool{}
	var urls []string
	for _, m := range ml.Members {
		if m.IsLearner {
			continue
		}
		for _, u := range h.toV2(m).ClientURLs {
			if !seen[u] {
				seen[u] = true
				urls = append(urls, u)
			}
		}
	}
	sort.Strings(urls)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(strings.Join(urls, ", ")))
}
