package v2edge

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// SetClusterID sets X-Etcd-Cluster-Id to id in hex, as 3.4 writes it, when
// the member said which cluster answered (id is not 0).
func SetClusterID(w http.ResponseWriter, id uint64) {
	if id != 0 {
		w.Header()["X-Etcd-Cluster-Id"] = []string{strconv.FormatUint(id, 16)}
	}
}

// Headers sets the headers of /v2/keys answers. It remembers the last
// cluster ID a member reported, so that answers that reach no member (a
// refused parameter, a member that did not answer) carry it too, as 3.4's
// do. The zero value is ready to use.
type Headers struct {
	last atomic.Pointer[clusterID]
	// lastMeta are the last success headers' values, shared by the next
	// answers while the numbers stay the same (reads between writes).
	lastMeta atomic.Pointer[metaValues]
}

// metaValues are the success headers' values for one set of numbers.
type metaValues struct {
	etcd, raft, term uint64
	v                []string // Content-Type, X-Etcd-Index, X-Raft-Index, X-Raft-Term
}

func newMetaValues(m v2store.Meta) *metaValues {
	// One string and one slice for the three numbers, instead of a
	// conversion and a slice per header.
	var nb [64]byte
	b := strconv.AppendUint(nb[:0], m.EtcdIndex, 10)
	i1 := len(b)
	b = strconv.AppendUint(b, m.RaftIndex, 10)
	i2 := len(b)
	b = strconv.AppendUint(b, m.RaftTerm, 10)
	nums := string(b)
	return &metaValues{etcd: m.EtcdIndex, raft: m.RaftIndex, term: m.RaftTerm,
		v: []string{"application/json", nums[:i1], nums[i1:i2], nums[i2:]}}
}

// clusterID is a cluster ID and its header value.
type clusterID struct {
	id  uint64
	hex []string
}

// ClusterID sets X-Etcd-Cluster-Id to id, or to the last ID seen when id
// is 0 (none when no member has answered yet).
func (h *Headers) ClusterID(w http.ResponseWriter, id uint64) {
	c := h.last.Load()
	if id != 0 && (c == nil || c.id != id) {
		c = &clusterID{id: id, hex: []string{strconv.FormatUint(id, 16)}}
		h.last.Store(c)
	}
	if c == nil {
		return
	}
	// The formatted value is shared: header values are only read once set.
	// Set once: a keys answer has 8 headers when Meta sets this again, and
	// a Go map of 8 keys grows to a hashed table on any assignment, even of
	// a key it holds (about 1 KB per answer).
	hd := w.Header()
	if v := hd["X-Etcd-Cluster-Id"]; len(v) == 1 && v[0] == c.hex[0] {
		return
	}
	hd["X-Etcd-Cluster-Id"] = c.hex
}

// Meta sets the headers of a successful keys answer (and of a watch's):
// Content-Type, X-Etcd-Index, X-Raft-Index, X-Raft-Term and
// X-Etcd-Cluster-Id.
func (h *Headers) Meta(w http.ResponseWriter, m v2store.Meta) {
	hd := w.Header()
	mv := h.lastMeta.Load()
	if mv == nil || mv.etcd != m.EtcdIndex || mv.raft != m.RaftIndex || mv.term != m.RaftTerm {
		mv = newMetaValues(m)
		h.lastMeta.Store(mv)
	}
	v := mv.v
	hd["Content-Type"] = v[0:1:1]
	hd["X-Etcd-Index"] = v[1:2:2]
	hd["X-Raft-Index"] = v[2:3:3]
	hd["X-Raft-Term"] = v[3:4:4]
	h.ClusterID(w, m.ClusterID)
}
