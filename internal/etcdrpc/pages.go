package etcdrpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// RangePages reads the range r names a page (Limit) at a time, every page
// at one revision: r.Revision, or the first page's. each gets every page's
// key-values in key order; RangePages returns the revision read at. r is
// not modified.
func RangePages(ctx context.Context, kv pb.KVClient, r *pb.RangeRequest, each func([]*mvccpb.KeyValue) error) (int64, error) {
	req := *r
	for {
		resp, err := kv.Range(ctx, &req)
		if err != nil {
			return 0, err
		}
		if req.Revision == 0 {
			req.Revision = resp.Header.Revision
		}
		if err := each(resp.Kvs); err != nil {
			return 0, err
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return req.Revision, nil
		}
		// The next page starts just after the last key read.
		req.Key = append(append([]byte(nil), resp.Kvs[len(resp.Kvs)-1].Key...), 0)
	}
}
