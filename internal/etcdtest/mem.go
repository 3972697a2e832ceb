package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Mem is a member that answers reads from memory, for unit tests of code
// that reads the v3 keyspace through a grpc.ClientConnInterface: KV Range,
// read-only KV Txn (no compares, only ranges) and Lease TimeToLive. Every
// other call fails with Unimplemented, so a test notices a write it did not
// expect. It keeps no history: a range at an older revision reads the
// current keys. The zero value is not ready; use NewMem.
type Mem struct {
	mu     sync.Mutex
	rev    int64
	kvs    map[string]*mvccpb.KeyValue
	leases map[int64]*pb.LeaseTimeToLiveResponse
	ranges int
}

var _ grpc.ClientConnInterface = (*Mem)(nil)

// NewMem returns an empty keyspace at revision 1, as a new etcd.
func NewMem() *Mem {
	return &Mem{rev: 1, kvs: map[string]*mvccpb.KeyValue{}, leases: map[int64]*pb.LeaseTimeToLiveResponse{}}
}

// Put writes key at the next revision (keeping its create revision when it
// exists) and returns what it stored.
func (m *Mem) Put(key, value string, lease int64) *mvccpb.KeyValue {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev++
	kv := &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), CreateRevision: m.rev, ModRevision: m.rev, Version: 1, Lease: lease}
	if old := m.kvs[key]; old != nil {
		kv.CreateRevision, kv.Version = old.CreateRevision, old.Version+1
	}
	m.kvs[key] = kv
	return kv
}

// Grant makes lease id known with ttl seconds left of granted.
func (m *Mem) Grant(id, ttl, granted int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leases[id] = &pb.LeaseTimeToLiveResponse{ID: id, TTL: ttl, GrantedTTL: granted}
}

// Rev is the current revision.
func (m *Mem) Rev() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev
}

// Ranges is how many ranges were read so far (each range of a Txn counts).
func (m *Mem) Ranges() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ranges
}

// Invoke answers the unary calls Mem knows.
func (m *Mem) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch method {
	case "/etcdserverpb.KV/Range":
		*reply.(*pb.RangeResponse) = *m.rangeLocked(args.(*pb.RangeRequest))
		return nil
	case "/etcdserverpb.KV/Txn":
		return m.readTxnLocked(args.(*pb.TxnRequest), reply.(*pb.TxnResponse))
	case "/etcdserverpb.Lease/LeaseTimeToLive":
		id := args.(*pb.LeaseTimeToLiveRequest).ID
		r := m.leases[id]
		if r == nil {
			r = &pb.LeaseTimeToLiveResponse{ID: id, TTL: -1}
		}
		*reply.(*pb.LeaseTimeToLiveResponse) = *r
		reply.(*pb.LeaseTimeToLiveResponse).Header = m.headerLocked()
		return nil
	}
	return status.Errorf(codes.Unimplemented, "etcdtest.Mem: %s", method)
}

// NewStream refuses every stream (watches, keep-alives).
func (m *Mem) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "etcdtest.Mem: no streams")
}

func (m *Mem) headerLocked() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: 1, MemberId: 1, Revision: m.rev, RaftTerm: 2}
}

// readTxnLocked runs a transaction of ranges without compares, as etcd runs
// its success branch.
func (m *Mem) readTxnLocked(r *pb.TxnRequest, out *pb.TxnResponse) error {
	if len(r.Compare) > 0 || len(r.Failure) > 0 {
		return status.Error(codes.Unimplemented, "etcdtest.Mem: only read-only transactions")
	}
	*out = pb.TxnResponse{Header: m.headerLocked(), Succeeded: true}
	for _, op := range r.Success {
		rr := op.GetRequestRange()
		if rr == nil {
			return status.Errorf(codes.Unimplemented, "etcdtest.Mem: only ranges in a transaction, not %T", op.Request)
		}
		out.Responses = append(out.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: m.rangeLocked(rr)}})
	}
	return nil
}

// rangeLocked reads [Key, RangeEnd) in key order as etcd does: RangeEnd nil
// is the key alone, "\x00" everything from Key on.
func (m *Mem) rangeLocked(r *pb.RangeRequest) *pb.RangeResponse {
	m.ranges++
	in := func(k []byte) bool {
		switch {
		case len(r.RangeEnd) == 0:
			return bytes.Equal(k, r.Key)
		case len(r.RangeEnd) == 1 && r.RangeEnd[0] == 0:
			return bytes.Compare(k, r.Key) >= 0
		}
		return bytes.Compare(k, r.Key) >= 0 && bytes.Compare(k, r.RangeEnd) < 0
	}
	var hit []*mvccpb.KeyValue
	for k, kv := range m.kvs {
		if in([]byte(k)) {
			hit = append(hit, kv)
		}
	}
	sort.Slice(hit, func(i, j int) bool { return bytes.Compare(hit[i].Key, hit[j].Key) < 0 })
	resp := &pb.RangeResponse{Header: m.headerLocked(), Count: int64(len(hit))}
	if r.CountOnly {
		return resp
	}
	if r.Limit > 0 && int64(len(hit)) > r.Limit {
		hit, resp.More = hit[:r.Limit], true
	}
	for _, kv := range hit {
		c := *kv
		if r.KeysOnly {
			c.Value = nil
		}
		resp.Kvs = append(resp.Kvs, &c)
	}
	return resp
}

// String lists the keys, for failure messages.
func (m *Mem) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.kvs))
	for k := range m.kvs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Sprintf("rev %d %q", m.rev, keys)
}
