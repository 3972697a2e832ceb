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
// [key, end) interval, Limit (Count is then at most Limit+1: the walk
// stops there), CountOnly, KeysOnly, and Revision only when it is the
// view's own. Anything else is an error rather than a silently
// different answer.
func (v *view) Range(_ context.Context, r *pb.RangeRequest, _ ...grpc.CallOption) (*pb.RangeResponse, error) {
	if r.Revision != 0 && r.Revision != v.s.rev {
		return nil, fmt.Errorf("%w: revision %d (cached %d)", errUnsupported, r.Revision, v.s.rev)
	}
	if r.SortOrder != pb.RangeRequest_NONE || r.MinModRevision != 0 || r.MaxModRevision != 0 ||
		r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 || r.Limit < 0 {
		return nil, errUnsupported
	}
	// One allocation for the answer, the bounds the tree compares with, and
	// room for one key-value: a v2 GET reads one file or one directory.
	a := &answer{r: r}
	a.resp.Header = &v.header
	a.resp.Kvs = a.one[:0]
	a.from.Key = r.Key
	switch {
	case len(r.RangeEnd) == 0:
		if kv, ok := v.s.kvs.Get(&a.from); ok {
			a.collect(kv)
		}
	case len(r.RangeEnd) == 1 && r.RangeEnd[0] == 0:
		v.s.kvs.AscendGreaterOrEqual(&a.from, a.collect)
	default:
		a.to.Key = r.RangeEnd
		v.s.kvs.AscendRange(&a.from, &a.to, a.collect)
	}
	if len(a.resp.Kvs) == 0 {
		a.resp.Kvs = nil // as the member answers an empty range
	}
	return &a.resp, nil
}

// answer is one Range's answer and what building it needs.
type answer struct {
	r        *pb.RangeRequest
	resp     pb.RangeResponse
	from, to mvccpb.KeyValue
	one      [1]*mvccpb.KeyValue
}

func (a *answer) collect(kv *mvccpb.KeyValue) bool {
	r, resp := a.r, &a.resp
	resp.Count++
	if r.CountOnly {
		return true
	}
	if r.Limit > 0 && int64(len(resp.Kvs)) >= r.Limit {
		// Stop here: walking the rest of the range only to count it made
		// every limited read (a listing's pages, a probe for one key below
		// a directory) cost the whole range. Count is then Limit+1, a lower
		// bound; the store reads only Kvs and More of a limited range.
		resp.More = true
		return false
	}
	if r.KeysOnly {
		kv = &mvccpb.KeyValue{Key: kv.Key, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision,
			Version: kv.Version, Lease: kv.Lease}
	}
	resp.Kvs = append(resp.Kvs, kv)
	return true
}
