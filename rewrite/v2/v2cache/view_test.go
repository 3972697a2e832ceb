package v2cache

import (
	"context"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func testView(keys ...string) *view {
	st := &state{kvs: newTree()}
	for i, k := range keys {
		_ = st.put(&mvccpb.KeyValue{Key: []byte(k), Value: []byte("v" + k), ModRevision: int64(i + 1), CreateRevision: 1, Version: 1})
	}
	st.rev = int64(len(keys))
	return &view{s: st.snapshot(), header: pb.ResponseHeader{Revision: st.rev}}
}

func keysOf(r *pb.RangeResponse) string {
	out := ""
	for _, kv := range r.Kvs {
		out += string(kv.Key) + "=" + string(kv.Value) + " "
	}
	return fmt.Sprintf("%scount=%d more=%v nil=%v", out, r.Count, r.More, r.Kvs == nil)
}

// TestViewRange: the view answers each request shape the store sends, and
// answers built one after another share nothing (each has its own room for
// a key-value).
func TestViewRange(t *testing.T) {
	v := testView("/a", "/a/", "/a/b", "/a/c", "/b")
	ctx := context.Background()
	for _, c := range []struct {
		name string
		r    *pb.RangeRequest
		want string
	}{
		{"one key", &pb.RangeRequest{Key: []byte("/a/b")}, "/a/b=v/a/b count=1 more=false nil=false"},
		{"missing key", &pb.RangeRequest{Key: []byte("/x")}, "count=0 more=false nil=true"},
		{"range", &pb.RangeRequest{Key: []byte("/a/"), RangeEnd: []byte("/a0")}, "/a/=v/a/ /a/b=v/a/b /a/c=v/a/c count=3 more=false nil=false"},
		{"from key", &pb.RangeRequest{Key: []byte("/a/c"), RangeEnd: []byte{0}}, "/a/c=v/a/c /b=v/b count=2 more=false nil=false"},
		{"limit", &pb.RangeRequest{Key: []byte("/a/"), RangeEnd: []byte("/a0"), Limit: 2}, "/a/=v/a/ /a/b=v/a/b count=3 more=true nil=false"},
		// The walk stops past the limit: Count is a lower bound then.
		{"limit stops the walk", &pb.RangeRequest{Key: []byte("/"), RangeEnd: []byte("/z"), Limit: 1}, "/a=v/a count=2 more=true nil=false"},
		{"count only", &pb.RangeRequest{Key: []byte("/"), RangeEnd: []byte("/z"), CountOnly: true}, "count=5 more=false nil=true"},
		{"keys only", &pb.RangeRequest{Key: []byte("/b"), KeysOnly: true}, "/b= count=1 more=false nil=false"},
		{"empty range", &pb.RangeRequest{Key: []byte("/c/"), RangeEnd: []byte("/c0")}, "count=0 more=false nil=true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := v.Range(ctx, c.r)
			if err != nil {
				t.Fatal(err)
			}
			if got := keysOf(r); got != c.want {
				t.Errorf("Range = %s, want %s", got, c.want)
			}
			if r.Header.Revision != 5 {
				t.Errorf("header revision %d, want 5", r.Header.Revision)
			}
		})
	}
	first, _ := v.Range(ctx, &pb.RangeRequest{Key: []byte("/a")})
	second, _ := v.Range(ctx, &pb.RangeRequest{Key: []byte("/b")})
	if string(first.Kvs[0].Key) != "/a" || string(second.Kvs[0].Key) != "/b" {
		t.Errorf("two answers share their key-values: %s, %s", keysOf(first), keysOf(second))
	}
}

// BenchmarkViewRange: a v2 GET's range of one file from the cache.
func BenchmarkViewRange(b *testing.B) {
	v := testView("/bench/", "/bench/k", "/bench/l")
	r := &pb.RangeRequest{Key: []byte("/bench/k"), RangeEnd: []byte("/bench/k/0")}
	b.ReportAllocs()
	for b.Loop() {
		if resp, _ := v.Range(context.Background(), r); len(resp.Kvs) != 1 {
			b.Fatal(keysOf(resp))
		}
	}
}
