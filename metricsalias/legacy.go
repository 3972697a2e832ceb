package metricsalias

import (
	"container/list"
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/internal/promchild"
	"github.com/prometheus/client_golang/prometheus"
)

// LegacyTracker remembers which clients still use legacy surfaces (v2,
// /v3beta, /v3alpha, metric aliases), in bounded memory: the least recently
// seen client is forgotten first. Counters per surface carry no client
// labels, so they never grow with the number of clients.
type LegacyTracker struct {
	max      int
	now      func() time.Time
	requests *prometheus.CounterVec
	bySurf   *promchild.Cache[string, prometheus.Counter]
	evicted  prometheus.Counter

	mu      sync.Mutex
	lru     *list.List // of *LegacyClient, most recent first
	byKey   map[legacyKey]*list.Element
	started time.Time
}

type legacyKey struct{ surface, remote, userAgent, user string }

// LegacyClient is one client on one legacy surface.
type LegacyClient struct {
	Surface   string    `json:"surface"`
	Remote    string    `json:"remote"`
	UserAgent string    `json:"userAgent"`
	User      string    `json:"user,omitempty"`
	Requests  uint64    `json:"requests"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
}

// NewLegacyTracker remembers at most max clients.
func NewLegacyTracker(max int, reg prometheus.Registerer) *LegacyTracker {
	t := &LegacyTracker{
		max: max, now: time.Now, lru: list.New(), byKey: map[legacyKey]*list.Element{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcdshim_legacy_requests_total",
			Help: "Requests on legacy surfaces (v2, v3beta, v3alpha, metric-alias scrapes)."}, []string{"surface"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_legacy_clients_evicted_total",
			Help: "Legacy clients forgotten because --legacy-clients-max was reached."}),
	}
	t.started = t.now()
	t.bySurf = promchild.New(childLimit, func(s string) prometheus.Counter { return t.requests.WithLabelValues(s) })
	if reg != nil {
		reg.MustRegister(t.requests, t.evicted)
	}
	return t
}

// Observe records one request on a surface.
func (t *LegacyTracker) Observe(r *http.Request, surface, user string) {
	t.bySurf.Get(surface).Inc()
	remote := r.RemoteAddr
	if h, _, err := net.SplitHostPort(remote); err == nil {
		remote = h // the port changes with every connection
	}
	k := legacyKey{surface: surface, remote: remote, userAgent: r.UserAgent(), user: user}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.byKey[k]; ok {
		c := el.Value.(*LegacyClient)
		c.Requests++
		c.LastSeen = now
		t.lru.MoveToFront(el)
		return
	}
	c := &LegacyClient{Surface: surface, Remote: remote, UserAgent: k.userAgent, User: user, Requests: 1, FirstSeen: now, LastSeen: now}
	t.byKey[k] = t.lru.PushFront(c)
	for t.lru.Len() > t.max {
		old := t.lru.Back()
		t.lru.Remove(old)
		oc := old.Value.(*LegacyClient)
		delete(t.byKey, legacyKey{oc.Surface, oc.Remote, oc.UserAgent, oc.User})
		t.evicted.Inc()
	}
}

// Clients lists the remembered clients, most recently seen first.
func (t *LegacyTracker) Clients() []LegacyClient {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]LegacyClient, 0, t.lru.Len())
	for el := t.lru.Front(); el != nil; el = el.Next() {
		out = append(out, *el.Value.(*LegacyClient))
	}
	return out
}

// ServeHTTP answers GET /debug/legacy.
func (t *LegacyTracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	clients := t.Clients()
	surfaces := map[string]uint64{}
	for _, c := range clients {
		surfaces[c.Surface] += c.Requests
	}
	sort.SliceStable(clients, func(i, j int) bool { return clients[i].Surface < clients[j].Surface })
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(LegacyReport{Since: t.started, Surfaces: surfaces, Clients: clients})
}

// LegacyReport is the JSON of GET /debug/legacy: since when the shim has
// been counting, requests per surface, and the clients, by surface.
type LegacyReport struct {
	Since    time.Time         `json:"since"`
	Surfaces map[string]uint64 `json:"surfaces"`
	Clients  []LegacyClient    `json:"clients"`
}
