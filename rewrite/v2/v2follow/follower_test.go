package v2follow_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// hangGuard bounds every wait so that a broken follower fails instead of
// hanging; it is not a performance threshold.
const hangGuard = 20 * time.Second

// fakeMember is a member at revision rev whose watch streams the test
// drives: each new stream arrives on streams, and the test reads what the
// follower sends on it and answers.
type fakeMember struct {
	rev     int64
	streams chan *fakeStream

	mu   sync.Mutex
	txns []*pb.TxnRequest
}

func newFakeMember(rev int64) *fakeMember {
	return &fakeMember{rev: rev, streams: make(chan *fakeStream, 16)}
}

func (m *fakeMember) ClientConn() grpc.ClientConnInterface { return m }

func (m *fakeMember) Invoke(_ context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	switch r := reply.(type) {
	case *pb.RangeResponse:
		r.Header = header(m.rev)
		return nil
	case *pb.TxnResponse:
		m.mu.Lock()
		m.txns = append(m.txns, args.(*pb.TxnRequest))
		m.mu.Unlock()
		r.Header = header(m.rev)
		return nil
	}
	return status.Errorf(codes.Unimplemented, "fake member: %s", method)
}

func (m *fakeMember) NewStream(ctx context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	if method != "/etcdserverpb.Watch/Watch" {
		return nil, status.Errorf(codes.Unimplemented, "fake member: %s", method)
	}
	s := &fakeStream{ctx: ctx, sent: make(chan *pb.WatchRequest, 16), recv: make(chan *pb.WatchResponse, 16)}
	m.streams <- s
	return s, nil
}

func header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: 1, MemberId: 7, RaftTerm: 2, Revision: rev}
}

// stream waits for the follower's next watch stream and its create request.
func (m *fakeMember) stream(t *testing.T) (*fakeStream, *pb.WatchCreateRequest) {
	t.Helper()
	select {
	case s := <-m.streams:
		return s, s.request(t).GetCreateRequest()
	case <-time.After(hangGuard):
		t.Fatal("the follower opened no watch stream")
	}
	return nil, nil
}

type fakeStream struct {
	grpc.ClientStream // nil: the follower uses SendMsg and RecvMsg only
	ctx               context.Context
	sent              chan *pb.WatchRequest
	recv              chan *pb.WatchResponse // nil: the stream breaks
}

func (s *fakeStream) SendMsg(m any) error {
	s.sent <- m.(*pb.WatchRequest)
	return nil
}

func (s *fakeStream) RecvMsg(m any) error {
	select {
	case <-s.ctx.Done():
		return status.FromContextError(s.ctx.Err()).Err()
	case next := <-s.recv:
		if next == nil {
			return status.Error(codes.Unavailable, "fake stream break")
		}
		r := m.(*pb.WatchResponse)
		r.Header, r.Created, r.Canceled, r.CancelReason, r.CompactRevision, r.Events =
			next.Header, next.Created, next.Canceled, next.CancelReason, next.CompactRevision, next.Events
		return nil
	}
}

// request is the next request the follower sent on the stream.
func (s *fakeStream) request(t *testing.T) *pb.WatchRequest {
	t.Helper()
	select {
	case r := <-s.sent:
		return r
	case <-time.After(hangGuard):
		t.Fatal("the follower sent nothing on its watch stream")
	}
	return nil
}

func (s *fakeStream) created(rev int64) {
	s.recv <- &pb.WatchResponse{Header: header(rev), Created: true}
}

func (s *fakeStream) events(rev int64, evs ...*mvccpb.Event) {
	s.recv <- &pb.WatchResponse{Header: header(rev), Events: evs}
}

func (s *fakeStream) breaks() { s.recv <- nil }

// recorder is a subscriber that writes down what it is told, one line per
// call, and keeps the batches.
type recorder struct {
	lines   chan string
	mu      sync.Mutex
	batches []*v2follow.Batch
}

func newRecorder() *recorder { return &recorder{lines: make(chan string, 100)} }

func (r *recorder) Resumed(rev int64, member uint64) {
	r.lines <- fmt.Sprintf("resumed %d on %d", rev, member)
}

func (r *recorder) Apply(b *v2follow.Batch) {
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
	var cs []string
	for _, c := range b.Changes {
		cs = append(cs, fmt.Sprintf("%s %s@%d", c.Event.Action, c.Path, c.Index))
	}
	r.lines <- fmt.Sprintf("apply %d events to %d [%s]", len(b.Events), b.Revision, strings.Join(cs, ", "))
}

func (r *recorder) Broken(compacted int64, err error) {
	r.lines <- fmt.Sprintf("broken, compacted %d", compacted)
}

// want checks the next lines the subscriber wrote.
func (r *recorder) want(t *testing.T, lines ...string) {
	t.Helper()
	for _, want := range lines {
		select {
		case got := <-r.lines:
			if got != want {
				t.Fatalf("subscriber told %q, want %q", got, want)
			}
		case <-time.After(hangGuard):
			t.Fatalf("subscriber told nothing, want %q", want)
		}
	}
}

const prefix = "/v2"

func put(rev int64, key, value string) *mvccpb.Event {
	return &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(prefix + key), Value: []byte(value), CreateRevision: rev, ModRevision: rev, Version: 1}}
}

// run starts a follower on m and stops it when the test ends.
func run(t *testing.T, m *fakeMember, opts v2follow.Options) (*v2follow.Follower, *recorder) {
	t.Helper()
	opts.Prefix = prefix
	f := v2follow.New(opts, m)
	r := newRecorder()
	f.Subscribe(r)
	serve(t, f)
	return f, r
}

// serve runs f until stop is called or the test ends: stop ends Run's
// context and waits for Run to return, failing the test if Run returns an
// error or does not return.
func serve(t *testing.T, f *v2follow.Follower) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(hangGuard):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestResume: the follower starts after the store index and resumes a
// broken watch after the last event it delivered, not at a response
// header's revision, which is the member's current one even while a watch
// is still catching up.
func TestResume(t *testing.T) {
	m := newFakeMember(10)
	_, r := run(t, m, v2follow.Options{})

	s, cr := m.stream(t)
	if cr.StartRevision != 11 || !cr.PrevKv || !cr.ProgressNotify || string(cr.Key) != prefix+"/" {
		t.Fatalf("first watch: %+v", cr)
	}
	// The member is at 5000; the watch gets a first batch of its backlog
	// (up to 12, a refresh no v2 watcher sees), then breaks.
	s.created(5000)
	s.events(5000, put(11, "/a", "v"))
	s.events(5000, put(12, "/.", v2store.ActionRefresh), put(12, "/a", "v"))
	s.breaks()
	r.want(t, "resumed 10 on 7", "apply 1 events to 11 [set /a@11]", "apply 2 events to 12 []", "broken, compacted 0")

	s, cr = m.stream(t)
	if cr.StartRevision != 13 {
		t.Fatalf("resumed from %d, want 13", cr.StartRevision)
	}
	// Synced, the watch gets a progress notification: its header holds.
	s.created(5000)
	s.recv <- &pb.WatchResponse{Header: header(5000)}
	s.breaks()
	r.want(t, "resumed 12 on 7", "apply 0 events to 5000 []", "broken, compacted 0")

	_, cr = m.stream(t)
	if cr.StartRevision != 5001 {
		t.Fatalf("resumed from %d, want 5001", cr.StartRevision)
	}
}

// TestCompacted: a watch whose start was compacted tells the subscribers
// the oldest revision left, and the follower resumes from it.
func TestCompacted(t *testing.T) {
	m := newFakeMember(10)
	_, r := run(t, m, v2follow.Options{})
	s, _ := m.stream(t)
	s.created(10)
	s.events(11, put(11, "/a", "v"))
	s.breaks()
	r.want(t, "resumed 10 on 7", "apply 1 events to 11 [set /a@11]", "broken, compacted 0")

	// Meanwhile the member compacted up to 20: the watch from 12 is
	// created, then told.
	s, cr := m.stream(t)
	if cr.StartRevision != 12 {
		t.Fatalf("resumed from %d, want 12", cr.StartRevision)
	}
	s.created(30)
	s.recv <- &pb.WatchResponse{Header: header(30), CompactRevision: 20}
	r.want(t, "resumed 11 on 7", "broken, compacted 20")

	// A compaction met at creation (nothing delivered on the stream) is
	// told too.
	s, cr = m.stream(t)
	if cr.StartRevision != 20 {
		t.Fatalf("resumed from %d after the compaction, want 20", cr.StartRevision)
	}
	s.recv <- &pb.WatchResponse{Header: header(40), CompactRevision: 25}
	r.want(t, "broken, compacted 25")
	s, cr = m.stream(t)
	if cr.StartRevision != 25 {
		t.Fatalf("resumed from %d after the second compaction, want 25", cr.StartRevision)
	}
	s.created(40)
	r.want(t, "resumed 24 on 7")
}

// TestRefused: a member that refuses the follower's watch makes it
// unavailable, saying what to configure; a watch that runs again clears it.
func TestRefused(t *testing.T) {
	m := newFakeMember(10)
	f, r := run(t, m, v2follow.Options{})
	s, _ := m.stream(t)
	s.recv <- &pb.WatchResponse{Header: header(10), Created: true, Canceled: true, CancelReason: rpctypes.ErrGRPCUserEmpty.Error()}
	s, _ = m.stream(t) // the follower gave up the first
	if err := f.Unavailable(); !errors.Is(err, v2follow.ErrNeedsIdentity) {
		t.Fatalf("unavailable: %v, want ErrNeedsIdentity", err)
	}
	s.created(10)
	r.want(t, "resumed 10 on 7")
	if err := f.Unavailable(); err != nil {
		t.Fatalf("unavailable with the watch running: %v", err)
	}
}

// TestOneDecodeForAll: every subscriber gets the same decoded batch; one
// that joins a running watch is told where it is at once, and one that
// left is told nothing more.
func TestOneDecodeForAll(t *testing.T) {
	m := newFakeMember(10)
	f, first := run(t, m, v2follow.Options{})
	s, _ := m.stream(t)
	s.created(10)
	first.want(t, "resumed 10 on 7")
	s.events(11, put(11, "/a", "v"))
	first.want(t, "apply 1 events to 11 [set /a@11]")

	second := newRecorder()
	cancel := f.Subscribe(second)
	second.want(t, "resumed 11 on 7")
	s.events(12, put(12, "/b", "w"), put(12, "/.", v2store.ActionCreate))
	first.want(t, "apply 2 events to 12 [create /b@12]")
	second.want(t, "apply 2 events to 12 [create /b@12]")
	if first.batches[1] != second.batches[0] {
		t.Fatal("the subscribers got different batches for one response")
	}
	cancel()
	s.events(13, put(13, "/c", "x"))
	first.want(t, "apply 1 events to 13 [set /c@13]")
	select {
	case l := <-second.lines:
		t.Fatalf("told %q after it left", l)
	default:
	}
}

// TestProgressRequest: a progress request reaches the running watch.
func TestProgressRequest(t *testing.T) {
	m := newFakeMember(10)
	f, r := run(t, m, v2follow.Options{})
	s, _ := m.stream(t)
	s.created(10)
	r.want(t, "resumed 10 on 7")
	f.RequestProgress()
	if s.request(t).GetProgressRequest() == nil {
		t.Fatal("the follower sent something else than the progress request")
	}
}

// TestExpiredDirectory: a directory whose TTL ran out has what is left
// below it removed, with the transaction every shim may send.
func TestExpiredDirectory(t *testing.T) {
	m := newFakeMember(10)
	_, r := run(t, m, v2follow.Options{})
	s, _ := m.stream(t)
	s.created(10)
	s.events(11, &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(prefix + "/d/"), ModRevision: 11},
		PrevKv: &mvccpb.KeyValue{Key: []byte(prefix + "/d/"), CreateRevision: 3, ModRevision: 3, Lease: 5}})
	r.want(t, "resumed 10 on 7", "apply 1 events to 11 [expire /d@11]")
	want := v2store.ExpireSubtreeRequest(prefix, "/d").String()
	deadline := time.Now().Add(hangGuard)
	for {
		m.mu.Lock()
		var got []string
		for _, txn := range m.txns {
			got = append(got, txn.String())
		}
		m.mu.Unlock()
		if len(got) == 1 && got[0] == want {
			return
		}
		if len(got) > 1 || time.Now().After(deadline) {
			t.Fatalf("transactions %v, want one: %s", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStopTellsSubscribers: when Run ends, subscribers learn the watch is
// gone.
func TestStopTellsSubscribers(t *testing.T) {
	m := newFakeMember(10)
	f := v2follow.New(v2follow.Options{Prefix: prefix}, m)
	r := newRecorder()
	f.Subscribe(r)
	stop := serve(t, f)
	s, _ := m.stream(t)
	s.created(10)
	r.want(t, "resumed 10 on 7")
	stop()
	r.want(t, "broken, compacted 0")
}
