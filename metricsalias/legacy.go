package metricsalias

import (
	"container/list"
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/etcdshim/etcdshim/internal/promchild"
	"github.com/prometheus/client_golang/prometheus"
)

// LegacyTracker remembers which clients still use legacy surfaces (v2,
// /v3beta, /v3alpha, metric aliases), in bounded memory: at most max
// clients, each with a User-Agent of at most maxAgentBytes. Clients that
// authenticated (a user is recorded only then) are kept apart from
// anonymous ones: when the table is full an anonymous client is forgotten
// first, so a flood of anonymous requests cannot wipe the authenticated
// entries; and one address keeps at most perRemoteAgents anonymous entries
// per surface, further user agents being counted in one "(other user
// agents)" entry, so one host cannot wipe the others. Counters per surface
// carry no client labels, so they never grow with the number of clients.
type LegacyTracker struct {
	max      int
	now      func() time.Time
	requests *prometheus.CounterVec
	bySurf   *promchild.Cache[string, prometheus.Counter]
	evicted  prometheus.Counter

	mu      sync.Mutex
	authed  *list.List // of *LegacyClient with a User, most recent first
	anon    *list.List // of *LegacyClient without, most recent first
	byKey   map[legacyKey]*list.Element
	perAddr map[addrKey]int // anonymous entries per surface and address
	started time.Time
}

type legacyKey struct{ surface, remote, userAgent, user string }

type addrKey struct{ surface, remote string }

const (
	// maxAgentBytes bounds a recorded User-Agent (real ones are far
	// shorter); longer ones are cut and marked.
	maxAgentBytes = 256
	// maxUserBytes bounds a recorded user name.
	maxUserBytes = 128
	// perRemoteAgents bounds the anonymous entries of one address on one
	// surface.
	perRemoteAgents = 16
	// otherAgents is the entry that counts an address's further agents.
	otherAgents = "(other user agents)"
)

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
		max: max, now: time.Now, authed: list.New(), anon: list.New(),
		byKey: map[legacyKey]*list.Element{}, perAddr: map[addrKey]int{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcdshim_legacy_requests_total",
			Help: "Requests on legacy surfaces (v2, v3beta, v3alpha, metric-alias scrapes)."}, []string{"surface"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_legacy_clients_evicted_total",
			Help: "Legacy clients forgotten because --legacy-clients-max was reached."}),
	}
	t.started = t.now()
	t.bySurf = promchild.New(childLimit, func(s string) prometheus.Counter { return t.requests.WithLabelValues(s) })
	if reg != nil {
		reg.MustRegister(t.requests, t.evicted, legacyClients{t})
	}
	return t
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "") + "…"
}

// Observe records one request on a surface. user must be a user the
// request authenticated as ("" for anonymous requests, requests whose
// credentials were refused, and requests with auth off): a name a client
// merely claims is never recorded.
func (t *LegacyTracker) Observe(r *http.Request, surface, user string) {
	t.bySurf.Get(surface).Inc()
	remote := r.RemoteAddr
	if h, _, err := net.SplitHostPort(remote); err == nil {
		remote = h // the port changes with every connection
	}
	k := legacyKey{surface: surface, remote: truncate(remote, maxAgentBytes), userAgent: truncate(r.UserAgent(), maxAgentBytes), user: truncate(user, maxUserBytes)}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.touch(k, now) {
		return
	}
	lst := t.authed
	if k.user == "" {
		lst = t.anon
		ak := addrKey{k.surface, k.remote}
		if t.perAddr[ak] >= perRemoteAgents {
			k.userAgent = otherAgents
			if t.touch(k, now) {
				return
			}
		}
		if len(t.byKey) >= t.max && t.anon.Len() == 0 {
			return // the table is full of authenticated clients: keep them
		}
		t.perAddr[ak]++
	}
	c := &LegacyClient{Surface: surface, Remote: k.remote, UserAgent: k.userAgent, User: k.user, Requests: 1, FirstSeen: now, LastSeen: now}
	t.byKey[k] = lst.PushFront(c)
	for len(t.byKey) > t.max {
		from := t.anon
		if from.Len() == 0 {
			from = t.authed
		}
		old := from.Back()
		from.Remove(old)
		oc := old.Value.(*LegacyClient)
		delete(t.byKey, legacyKey{oc.Surface, oc.Remote, oc.UserAgent, oc.User})
		if oc.User == "" {
			ak := addrKey{oc.Surface, oc.Remote}
			if t.perAddr[ak]--; t.perAddr[ak] <= 0 {
				delete(t.perAddr, ak)
			}
		}
		t.evicted.Inc()
	}
}

// touch counts a request of a known client.
func (t *LegacyTracker) touch(k legacyKey, now time.Time) bool {
	el, ok := t.byKey[k]
	if !ok {
		return false
	}
	c := el.Value.(*LegacyClient)
	c.Requests++
	c.LastSeen = now
	if c.User == "" {
		t.anon.MoveToFront(el)
	} else {
		t.authed.MoveToFront(el)
	}
	return true
}

// Clients lists the remembered clients, most recently seen first.
func (t *LegacyTracker) Clients() []LegacyClient {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]LegacyClient, 0, len(t.byKey))
	for _, l := range []*list.List{t.authed, t.anon} {
		for el := l.Front(); el != nil; el = el.Next() {
			out = append(out, *el.Value.(*LegacyClient))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastSeen.After(out[j].LastSeen) })
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
	w.Header().Set("Cache-Control", "no-store")
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
