package v2store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// txnRecorder passes calls on and keeps every transaction it sees.
type txnRecorder struct {
	grpc.ClientConnInterface
	mu   sync.Mutex
	txns []*pb.TxnRequest
}

func (r *txnRecorder) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if t, ok := args.(*pb.TxnRequest); ok {
		r.mu.Lock()
		r.txns = append(r.txns, t)
		r.mu.Unlock()
	}
	return r.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

// take returns the transactions since the last call.
func (r *txnRecorder) take() []*pb.TxnRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.txns
	r.txns = nil
	return out
}

func nested(t *pb.TxnRequest) int {
	n := 0
	for _, op := range t.Success {
		if op.GetRequestTxn() != nil {
			n++
		}
	}
	return n
}

// testParents: a write into a directory whose markers exist is one
// transaction without the nested ones that make markers; a write that needs
// a marker falls back to the full transaction, which makes it; and errors
// are the same either way.
func testParents(t *testing.T, cc grpc.ClientConnInterface) {
	rec := &txnRecorder{ClientConnInterface: cc}
	s := v2store.NewV3(rec, "/parents")
	ctx := context.Background()
	type want struct {
		txns, nestedInLast int
		code               int // v2 error code, 0 for success
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want want
	}{
		{"first write makes the markers", func() error {
			_, _, err := s.Put(ctx, "/a/b/k1", v2store.SetOptions{Value: "1"})
			return err
		}, want{txns: 2, nestedInLast: 2}},
		{"next write in the same directory", func() error {
			_, _, err := s.Put(ctx, "/a/b/k2", v2store.SetOptions{Value: "2"})
			return err
		}, want{txns: 1}},
		{"create in an existing directory", func() error {
			_, _, err := s.Put(ctx, "/a/b/k3", v2store.SetOptions{Value: "3", PrevExist: boolp(false)})
			return err
		}, want{txns: 1}},
		{"mkdir in an existing directory", func() error {
			_, _, err := s.Put(ctx, "/a/d", v2store.SetOptions{Dir: true})
			return err
		}, want{txns: 1}},
		{"a new subdirectory needs one marker", func() error {
			_, _, err := s.Put(ctx, "/a/c/k", v2store.SetOptions{Value: "4"})
			return err
		}, want{txns: 2, nestedInLast: 2}},
		{"create of an existing key: the full transaction names the error", func() error {
			_, _, err := s.Put(ctx, "/a/b/k1", v2store.SetOptions{Value: "5", PrevExist: boolp(false)})
			return err
		}, want{txns: 2, nestedInLast: 2, code: v2store.EcodeNodeExist}},
		{"a file on the path", func() error {
			_, _, err := s.Put(ctx, "/a/b/k1/x", v2store.SetOptions{Value: "6"})
			return err
		}, want{txns: 2, nestedInLast: 3, code: v2store.EcodeNotDir}},
		{"update needs no parents", func() error {
			_, _, err := s.Put(ctx, "/a/b/k1", v2store.SetOptions{Value: "7", PrevExist: boolp(true)})
			return err
		}, want{txns: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.take()
			err := tc.do()
			code := 0
			var e *v2store.Error
			if errors.As(err, &e) {
				code = e.Code
			} else if err != nil {
				t.Fatal(err)
			}
			txns := rec.take()
			got := want{txns: len(txns), code: code}
			if len(txns) > 0 {
				got.nestedInLast = nested(txns[len(txns)-1])
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// What the writes made: both directories with their markers, so they
	// outlive their files, and the values written.
	for _, p := range []string{"/a/b/k1", "/a/b/k2", "/a/b/k3", "/a/c/k"} {
		if _, _, err := s.Delete(ctx, p, v2store.DeleteOptions{}); err != nil {
			t.Fatalf("delete %s: %v", p, err)
		}
	}
	for _, d := range []string{"/a/b", "/a/c", "/a/d"} {
		ev, _, err := s.Get(ctx, d, v2store.GetOptions{})
		if err != nil || !ev.Node.Dir {
			t.Fatalf("get %s after its files went: %+v, %v; want an empty directory", d, ev, err)
		}
	}
}
