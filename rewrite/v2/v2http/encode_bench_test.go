package v2http

import (
	"net/http/httptest"
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// BenchmarkV2Get is a v2 GET through parsing, a (memory) store and the
// response encoding: the shim's own per-request v2 cost without the network.
func BenchmarkV2Get(b *testing.B) {
	h := New(Options{}, &recordingStore{})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/v2/keys/app/config?quorum=false&recursive=false", nil))
	}
}

func BenchmarkEventEncode(b *testing.B) {
	v := "some value"
	ev := &v2store.Event{Action: "set", Node: &v2store.Node{Key: "/app/config", Value: &v, ModifiedIndex: 12345, CreatedIndex: 12000},
		PrevNode: &v2store.Node{Key: "/app/config", Value: &v, ModifiedIndex: 12000, CreatedIndex: 12000}}
	k := New(Options{}, &recordingStore{})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		k.writeEvent(rec, ev, v2store.Meta{EtcdIndex: 12345, RaftIndex: 12345, RaftTerm: 2, ClusterID: 7}, false)
	}
}
