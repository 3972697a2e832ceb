package v2cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/google/btree"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
)

// tree orders the cached key-values by key. Items are shared between
// snapshots and never modified once inserted.
type tree = btree.BTreeG[*mvccpb.KeyValue]

func newTree() *tree {
	return btree.NewG(32, func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 })
}

// snapshot is the keyspace as of rev: every event up to rev applied.
type snapshot struct {
	kvs *tree
	rev int64
	// bytes is what the keys and values take, for --v2-read-cache-max-bytes.
	bytes int64
}

// view answers ranges from one snapshot. header is the barrier's, at the
// snapshot's revision; every answer shares it (readers do not modify it).
type view struct {
	s      *snapshot
	header pb.ResponseHeader
}

var errUnsupported = errors.New("v2cache: range option not supported by the cache")

// Range serves the subset of RangeRequest the v2 store sends: a key or a
// [key, end) interval, Limit, CountOnly, KeysOnly, and Revision only when
// it is the view's own. Anything else is an error rather than a silently
// different answer.
func (v *view) Range(_ context.Context, r *pb.RangeRequest, _ ...grpc.CallOption) (*pb.RangeResponse, error) {
	if r.Revision != 0 && r.Revision != v.s.rev {
		return nil, fmt.Errorf("%w: revision %d (cached %d)", errUnsupported, r.Revision, v.s.rev)
	}
	if r.SortOrder != pb.RangeRequest_NONE || r.MinModRevision != 0 || r.MaxModRevision != 0 ||
		r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 || r.Limit < 0 {
		return nil, errUnsupported
	}
	resp := &pb.RangeResponse{Header: &v.header}
	collect := func(kv *mvccpb.KeyValue) bool {
		resp.Count++
		if r.CountOnly {
			return true
		}
		if r.Limit > 0 && int64(len(resp.Kvs)) >= r.Limit {
			resp.More = true
			return true
		}
		if r.KeysOnly {
			kv = &mvccpb.KeyValue{Key: kv.Key, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision,
				Version: kv.Version, Lease: kv.Lease}
		}
		resp.Kvs = append(resp.Kvs, kv)
		return true
	}
	from := &mvccpb.KeyValue{Key: r.Key}
	switch {
	case len(r.RangeEnd) == 0:
		if kv, ok := v.s.kvs.Get(from); ok {
			collect(kv)
		}
	case len(r.RangeEnd) == 1 && r.RangeEnd[0] == 0:
		v.s.kvs.AscendGreaterOrEqual(from, collect)
	default:
		v.s.kvs.AscendRange(from, &mvccpb.KeyValue{Key: r.RangeEnd}, collect)
	}
	return resp, nil
}
