package v2store

import (
	"context"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// pagedKeys answers ranges over keys (sorted) with their limits, at
// revision rev; compactedAt lists the calls (counted from 1) answered
// "required revision has been compacted" instead, after which rev moves on.
type pagedKeys struct {
	keys        []string
	rev         int64
	compactedAt map[int]bool
	calls       int
}

func (p *pagedKeys) Range(_ context.Context, r *pb.RangeRequest, _ ...grpc.CallOption) (*pb.RangeResponse, error) {
	p.calls++
	if p.compactedAt[p.calls] {
		p.rev++
		return nil, rpctypes.ErrGRPCCompacted
	}
	if r.Revision != 0 && r.Revision != p.rev {
		return nil, fmt.Errorf("read at %d, the store is at %d", r.Revision, p.rev)
	}
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: p.rev}}
	for _, k := range p.keys {
		if k < string(r.Key) || k >= string(r.RangeEnd) {
			continue
		}
		if r.Limit > 0 && int64(len(resp.Kvs)) == r.Limit {
			resp.More = true
			break
		}
		resp.Kvs = append(resp.Kvs, &mvccpb.KeyValue{Key: []byte(k), CreateRevision: 1, ModRevision: 1})
	}
	return resp, nil
}

// TestListingStartsAgainAfterCompaction: a listing's later pages read at
// the first page's revision; a compaction in between removes it, and the
// listing starts again at the new revision instead of failing the GET.
func TestListingStartsAgainAfterCompaction(t *testing.T) {
	var keys []string
	for i := range 2 * listFirstPage {
		keys = append(keys, fmt.Sprintf("/p/d/f%04d", i)) // files: every page is read
	}
	for _, c := range []struct {
		name        string
		compactedAt map[int]bool
		wantErr     bool
	}{
		{"no compaction", nil, false},
		{"second page", map[int]bool{2: true}, false},
		{"twice", map[int]bool{2: true, 4: true}, false},
		{"every attempt", map[int]bool{2: true, 4: true, 6: true}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &pagedKeys{keys: keys, rev: 10, compactedAt: c.compactedAt}
			r, err := listChildren(context.Background(), p, []byte("/p/d"), []byte("/p/d/"), []byte("/p/d0"), false, true, listMemberPages)
			if c.wantErr {
				if err == nil {
					t.Fatal("a listing compacted at every attempt answered")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Kvs) != len(keys) || r.Header.Revision != p.rev {
				t.Fatalf("%d keys at revision %d, want %d at %d", len(r.Kvs), r.Header.Revision, len(keys), p.rev)
			}
		})
	}
}
