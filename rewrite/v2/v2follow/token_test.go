package v2follow_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2follow"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/metadata"
)

// fakeIdentity hands out token t<n>; Renew moves to the next one when the
// member refused the token, as v2auth.Own does.
type fakeIdentity struct {
	mu      sync.Mutex
	n       int
	renewed []error
}

func (i *fakeIdentity) Context(ctx context.Context) (context.Context, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, fmt.Sprintf("t%d", i.n+1)), nil
}

func (i *fakeIdentity) Renew(_, _ context.Context, err error) {
	if !etcderr.InvalidToken(err) {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.renewed = append(i.renewed, err)
	i.n++
}

func (i *fakeIdentity) renewals() []error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]error(nil), i.renewed...)
}

// token is the token a watch stream was opened with.
func (s *fakeStream) token() string {
	md, _ := metadata.FromOutgoingContext(s.ctx)
	if v := md.Get(rpctypes.TokenFieldNameGRPC); len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// refuseToken answers a watch create as etcd 3.5+ does when the stream's
// token is expired or unknown to the member (a restarted one knows none).
func (s *fakeStream) refuseToken() {
	s.recv <- &pb.WatchResponse{Header: header(10), Created: true, Canceled: true, CancelReason: rpctypes.ErrGRPCInvalidAuthToken.Error()}
}

// TestTokenRefused: a member that refuses the follower's token (issue 19's
// soak: the watch moving back to a member that had just restarted) is not
// refusing the shim's --user. The follower renews the token and opens the
// next watch at once, with the new token, from where it was; it does not
// report itself unavailable (which would send new long polls to watches of
// their own) nor log a missing read permission. A fresh token refused again
// (the member has not applied its Authenticate yet) waits 100 ms, then
// 200 ms; a watch that runs again ends that.
func TestTokenRefused(t *testing.T) {
	m := newFakeMember(10)
	id := &fakeIdentity{}
	core, logs := observer.New(zapcore.InfoLevel)
	f := v2follow.New(v2follow.Options{Prefix: prefix, Identity: id, Logger: zap.New(core)}, m)
	var pmu sync.Mutex
	var pauses []time.Duration
	v2follow.SetPause(f, func(_ context.Context, d time.Duration) bool {
		pmu.Lock()
		pauses = append(pauses, d)
		pmu.Unlock()
		return true
	})
	takePauses := func() []time.Duration {
		pmu.Lock()
		defer pmu.Unlock()
		p := pauses
		pauses = nil
		return p
	}
	r := newRecorder()
	f.Subscribe(r)
	serve(t, f)

	s, _ := m.stream(t)
	if got := s.token(); got != "t1" {
		t.Fatalf("first watch carried token %q, want t1", got)
	}
	s.created(10)
	s.events(11, put(11, "/a", "v"))
	s.breaks() // the member goes (a drain, a restart)
	r.want(t, "resumed 10 on 7", "apply 1 events to 11 [set /a@11]", "broken, compacted 0")

	// The member the watch resumes on has restarted: it refuses t1.
	s, cr := m.stream(t)
	if p := takePauses(); fmt.Sprint(p) != "[200ms]" { // (the pauses are read once the next stream is open)
		t.Fatalf("pauses after a broken stream: %v, want [200ms]", p)
	}
	if cr.StartRevision != 12 || s.token() != "t1" {
		t.Fatalf("resumed from %d with %q, want 12 with t1", cr.StartRevision, s.token())
	}
	s.refuseToken() // a watch never created: the subscribers are told nothing

	s, cr = m.stream(t)
	if cr.StartRevision != 12 || s.token() != "t2" {
		t.Fatalf("after the refusal: resumed from %d with %q, want 12 with the renewed t2", cr.StartRevision, s.token())
	}
	if rn := id.renewals(); len(rn) != 1 || !etcderr.InvalidToken(rn[0]) {
		t.Fatalf("renewals: %v, want one for the invalid token", rn)
	}
	if err := f.Unavailable(); err != nil {
		t.Fatalf("unavailable after a token refusal: %v, want nil (the identity was not refused)", err)
	}
	if p := takePauses(); len(p) != 0 {
		t.Fatalf("pauses before the watch with the renewed token: %v, want none", p)
	}

	// The member has not applied t2's Authenticate yet: refused again,
	// then once more, then the watch runs.
	s.refuseToken()
	s, _ = m.stream(t)
	s.refuseToken()
	s, cr = m.stream(t)
	if cr.StartRevision != 12 || s.token() != "t4" {
		t.Fatalf("third renewal: resumed from %d with %q, want 12 with t4", cr.StartRevision, s.token())
	}
	if p := takePauses(); fmt.Sprint(p) != "[100ms 200ms]" {
		t.Fatalf("pauses after fresh tokens were refused: %v, want [100ms 200ms]", p)
	}
	s.created(12)
	r.want(t, "resumed 11 on 7")
	select {
	case l := <-r.lines:
		t.Fatalf("the refused watches told the subscribers %q", l)
	default:
	}
	s.breaks()
	r.want(t, "broken, compacted 0")
	s, _ = m.stream(t)
	if p := takePauses(); fmt.Sprint(p) != "[200ms]" {
		t.Fatalf("pauses after a broken stream, once a watch ran again: %v, want [200ms]", p)
	}
	s.created(12)
	r.want(t, "resumed 11 on 7")

	for _, e := range logs.All() {
		if e.Level >= zapcore.WarnLevel || strings.Contains(fmt.Sprint(e.ContextMap()), "permission") {
			t.Errorf("logged %s %q %v: a refused token is not a refused identity", e.Level, e.Message, e.ContextMap())
		}
	}
	if n := logs.FilterMessageSnippet("token refused by the member").Len(); n != 3 {
		t.Errorf("%d log lines say the token was refused, want 3", n)
	}
}
