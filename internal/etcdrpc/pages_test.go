package etcdrpc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/etcdtest"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestRangePages(t *testing.T) {
	_, cc := etcdtest.Start(t)
	kv := etcdrpc.NewKVClient(cc)
	ctx := context.Background()
	put := func(k string) int64 {
		r, err := kv.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	var last int64
	for i := 0; i < 25; i++ {
		last = put(fmt.Sprintf("p/%02d", i))
	}
	put("q/outside")

	req := &pb.RangeRequest{Key: []byte("p/"), RangeEnd: []byte("p0"), Limit: 10}
	var pages []int
	var keys []string
	rev, err := etcdrpc.RangePages(ctx, kv, req, func(kvs []*mvccpb.KeyValue) error {
		if len(pages) == 0 {
			put("p/99") // after the first page: a later revision, not to be read
		}
		pages = append(pages, len(kvs))
		for _, x := range kvs {
			keys = append(keys, string(x.Key))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pages) != "[10 10 5]" || len(keys) != 25 || keys[0] != "p/00" || keys[24] != "p/24" {
		t.Fatalf("pages %v, keys %v: want 25 keys p/00…p/24 in pages of 10", pages, keys)
	}
	if rev != last+1 { // the first page's revision: the puts of p/* and q/outside
		t.Fatalf("read at revision %d, want %d", rev, last+1)
	}
	if string(req.Key) != "p/" || req.Revision != 0 {
		t.Fatalf("the caller's request was modified: %+v", req)
	}

	stop := errors.New("stop")
	if _, err := etcdrpc.RangePages(ctx, kv, req, func([]*mvccpb.KeyValue) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("each's error: got %v", err)
	}
}
