package v2store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
)

// silentMember never answers: every call waits for its context.
type silentMember struct{}

func (silentMember) Invoke(ctx context.Context, _ string, _, _ any, _ ...grpc.CallOption) error {
	<-ctx.Done()
	return ctx.Err()
}

func (silentMember) NewStream(ctx context.Context, _ *grpc.StreamDesc, _ string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// leasedFile is a read cache holding one file with a lease.
type leasedFile struct{}

func (leasedFile) Acquire(context.Context) (v2store.Ranger, bool) { return leasedFile{}, true }

func (leasedFile) Range(context.Context, *pb.RangeRequest, ...grpc.CallOption) (*pb.RangeResponse, error) {
	return &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 7},
		Kvs: []*mvccpb.KeyValue{{Key: []byte("/a"), Value: []byte("x"), CreateRevision: 5, ModRevision: 6, Lease: 42}}}, nil
}

// Callers give Get no deadline (so a cached read pays for no timer): the
// store must bound every member call it makes itself.
func TestGetBoundsMemberCalls(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func() *v2store.V3Store
		check func(t *testing.T, ev *v2store.Event, err error)
	}{
		{
			name:  "range on a member that does not answer",
			store: func() *v2store.V3Store { return v2store.NewV3(silentMember{}, "") },
			check: func(t *testing.T, _ *v2store.Event, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want a deadline exceeded", err)
				}
			},
		},
		{
			// The cache answers the range; the lease's time to live still
			// comes from the member, and is left out when it cannot.
			name:  "lease lookup of a cached file",
			store: func() *v2store.V3Store { return v2store.NewV3(silentMember{}, "").WithReadCache(leasedFile{}) },
			check: func(t *testing.T, ev *v2store.Event, err error) {
				if err != nil || ev.Node.Value == nil || *ev.Node.Value != "x" || ev.Node.TTL != 0 {
					t.Fatalf("Get = %+v, %v; want the file without a TTL", ev, err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.store()
			v2store.SetTimeout(s, 50*time.Millisecond)
			type result struct {
				ev  *v2store.Event
				err error
			}
			done := make(chan result, 1)
			go func() {
				ev, _, err := s.Get(context.Background(), "/a", v2store.GetOptions{})
				done <- result{ev, err}
			}()
			select {
			case r := <-done:
				tc.check(t, r.ev, r.err)
			case <-time.After(time.Minute):
				t.Fatal("Get did not return: its member call was not bounded")
			}
		})
	}
}
