package v2edge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// TestSetClusterID: by the ID a member reported (0: none), the header.
func TestSetClusterID(t *testing.T) {
	for id, want := range map[uint64][]string{0: nil, 26: {"1a"}, 0xcdf818194e3a8c32: {"cdf818194e3a8c32"}} {
		t.Run(fmt.Sprintf("%#x", id), func(t *testing.T) {
			rec := httptest.NewRecorder()
			SetClusterID(rec, id)
			if got := rec.Header().Values("X-Etcd-Cluster-Id"); !reflect.DeepEqual(got, want) {
				t.Fatalf("X-Etcd-Cluster-Id %q, want %q", got, want)
			}
		})
	}
}

// TestHeaders: the keys headers, and the cluster ID remembered for answers
// that reach no member, in the order a handler meets them.
func TestHeaders(t *testing.T) {
	var h Headers
	for _, tc := range []struct {
		name  string
		write func(w http.ResponseWriter)
		want  http.Header
	}{
		{"nothing seen yet", func(w http.ResponseWriter) { h.ClusterID(w, 0) }, http.Header{}},
		{"success", func(w http.ResponseWriter) {
			h.Meta(w, v2store.Meta{EtcdIndex: 12345, RaftIndex: 12346, RaftTerm: 2, ClusterID: 0xabc})
		}, http.Header{
			"Content-Type":      {"application/json"},
			"X-Etcd-Index":      {"12345"},
			"X-Raft-Index":      {"12346"},
			"X-Raft-Term":       {"2"},
			"X-Etcd-Cluster-Id": {"abc"},
		}},
		{"remembered", func(w http.ResponseWriter) { h.ClusterID(w, 0) }, http.Header{"X-Etcd-Cluster-Id": {"abc"}}},
		{"a new cluster", func(w http.ResponseWriter) { h.ClusterID(w, 0xdef) }, http.Header{"X-Etcd-Cluster-Id": {"def"}}},
		{"the new one remembered", func(w http.ResponseWriter) { h.ClusterID(w, 0) }, http.Header{"X-Etcd-Cluster-Id": {"def"}}},
		{"zeros", func(w http.ResponseWriter) { h.Meta(w, v2store.Meta{}) }, http.Header{
			"Content-Type":      {"application/json"},
			"X-Etcd-Index":      {"0"},
			"X-Raft-Index":      {"0"},
			"X-Raft-Term":       {"0"},
			"X-Etcd-Cluster-Id": {"def"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.write(rec)
			if !reflect.DeepEqual(rec.Header(), tc.want) {
				t.Fatalf("headers %v, want %v", rec.Header(), tc.want)
			}
		})
	}
}
