package v2auth

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/waitfor"
	"go.etcd.io/etcd/api/v3/authpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// slowAuthMember is a fakeMember whose UserGet waits for gate while it is
// set: etcd serves UserGet and RoleGet through raft, and on a loaded
// machine a quorum's disk writes can take seconds.
type slowAuthMember struct {
	*fakeMember
	gate     atomic.Pointer[chan struct{}]
	userGets atomic.Int64
}

func (m *slowAuthMember) ClientConn() grpc.ClientConnInterface { return m }

func (m *slowAuthMember) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if method == "/etcdserverpb.Auth/UserGet" {
		m.userGets.Add(1)
		if g := m.gate.Load(); g != nil {
			select {
			case <-*g:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return m.fakeMember.Invoke(ctx, method, args, reply, opts...)
}

// TestScopeReadOffTheRequestPath: issue 19's soak, a Patroni long poll got
// no headers within its 2.5 s read timeout. Before them the shim checks
// the client's read access and reads the store index, each with a token
// whose user's permissions (scope) were read again, on the request, once
// they were 10 s old, and once more with every renewed token: UserGet and
// RoleGet, raft requests. Now a request waits for the member only for a
// missing or refused token: an old scope is read again in the background,
// and a renewed token keeps its user's recent scope.
func TestScopeReadOffTheRequestPath(t *testing.T) {
	m := &slowAuthMember{fakeMember: &fakeMember{calls: map[string]int{},
		perms: []*authpb.Permission{{PermType: authpb.READWRITE, Key: []byte("/app/"), RangeEnd: []byte("/app0")}}}}
	tokens := NewTokens(m, "", "", 8)
	up := tokens.Upstream(m)
	if err := rangeAsAlice(tokens, up); err != nil { // the first token: its scope is read with it
		t.Fatal(err)
	}
	if got := m.userGets.Load(); got != 1 {
		t.Fatalf("%d UserGet calls for the first token, want 1", got)
	}
	age := func(d time.Duration) {
		tokens.mu.Lock()
		for el := tokens.lru.Front(); el != nil; el = el.Next() {
			el.Value.(*entry).fetched = time.Now().Add(-d)
		}
		tokens.mu.Unlock()
	}
	fetched := func() time.Time {
		tokens.mu.Lock()
		defer tokens.mu.Unlock()
		return tokens.lru.Front().Value.(*entry).fetched
	}
	gate := make(chan struct{})
	m.gate.Store(&gate)

	// The scope is older than scopeMaxAge: the request goes on with it
	// while the member is slow to answer UserGet.
	age(scopeMaxAge + time.Second)
	done := make(chan error, 1)
	go func() { done <- rangeAsAlice(tokens, up) }()
	if err := waitfor.Recv(t, done, 10*time.Second, "a request with a 10-s-old scope while UserGet hangs"); err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, 10*time.Second, "the background read of the scope", func() bool { return m.userGets.Load() == 2 })
	go func() { done <- rangeAsAlice(tokens, up) }() // one read at a time
	if err := waitfor.Recv(t, done, 10*time.Second, "a second request while the scope is read"); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitfor.True(t, 10*time.Second, "the scope read again", func() bool { return time.Since(fetched()) < scopeMaxAge })
	if got := m.userGets.Load(); got != 2 {
		t.Fatalf("%d UserGet calls, want 2 (one in the background for two requests)", got)
	}

	// The token expires (the TTL passed) while the member is slow again:
	// the renewal is one Authenticate, with the scope read 30 s ago.
	gate = make(chan struct{})
	m.gate.Store(&gate)
	age(30 * time.Second)
	m.mu.Lock()
	m.current = "expired"
	m.mu.Unlock()
	go func() { done <- rangeAsAlice(tokens, up) }()
	if err := waitfor.Recv(t, done, 10*time.Second, "a request renewing its token while UserGet hangs"); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitfor.True(t, 10*time.Second, "the renewed token's scope read again", func() bool { return time.Since(fetched()) < scopeMaxAge })
	m.mu.Lock()
	auths := m.calls["/etcdserverpb.Auth/Authenticate"]
	m.mu.Unlock()
	// UserGet: the expired token's background read (begun before the
	// member refused it, then refused) and the renewed token's.
	if auths != 2 {
		t.Fatalf("%d Authenticate calls, want 2", auths)
	}
	waitfor.True(t, 10*time.Second, "4 UserGet calls", func() bool { return m.userGets.Load() == 4 })

	// A scope older than scopeReuse is read with the renewed token, before
	// it is used.
	age(scopeReuse + time.Second)
	tokens.mu.Lock()
	refused := tokens.lru.Front().Value.(*entry).token
	tokens.mu.Unlock()
	m.mu.Lock()
	m.current = "expired"
	m.mu.Unlock()
	if _, err := tokens.token(context.Background(), Identity{User: "alice", Password: "pw"}, refused); err != nil {
		t.Fatal(err)
	}
	if got := m.userGets.Load(); got != 5 {
		t.Fatalf("%d UserGet calls, want 5 (the old scope read with the renewed token)", got)
	}
	if time.Since(fetched()) >= scopeMaxAge {
		t.Fatal("the renewed token kept a scope older than scopeReuse")
	}
}

// TestBackgroundReadsStopWithRun: a scope read in the background used to
// run on its own 10 s timeout, so a member slow to answer kept it (and the
// shim's connection) busy after the shim stopped. Run now ends it, waits
// for it, and no read starts after Run returned.
func TestBackgroundReadsStopWithRun(t *testing.T) {
	m := &slowAuthMember{fakeMember: &fakeMember{calls: map[string]int{},
		perms: []*authpb.Permission{{PermType: authpb.READWRITE, Key: []byte("/app/"), RangeEnd: []byte("/app0")}}}}
	tokens := NewTokens(m, "", "", 8)
	up := tokens.Upstream(m)
	if err := rangeAsAlice(tokens, up); err != nil {
		t.Fatal(err)
	}
	age := func() {
		tokens.mu.Lock()
		defer tokens.mu.Unlock()
		for el := tokens.lru.Front(); el != nil; el = el.Next() {
			el.Value.(*entry).fetched = time.Now().Add(-scopeMaxAge - time.Second)
		}
	}
	gate := make(chan struct{}) // never closed: the member does not answer UserGet
	m.gate.Store(&gate)
	age()
	if err := rangeAsAlice(tokens, up); err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, 10*time.Second, "the background read of the scope", func() bool { return m.userGets.Load() == 2 })

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- tokens.Run(ctx) }()
	cancel()
	// Well inside authTimeout (10 s): the read ended with Run's context.
	if err := waitfor.Recv(t, ran, 5*time.Second, "Run waiting for the hanging read"); err != nil {
		t.Fatal(err)
	}
	tokens.mu.Lock()
	reading := len(tokens.refreshing)
	tokens.mu.Unlock()
	if reading != 0 {
		t.Fatalf("%d scope reads still marked in flight after Run returned", reading)
	}

	// After Run: requests still answer with the cached token, and start no
	// background read.
	age()
	if err := rangeAsAlice(tokens, up); err != nil {
		t.Fatal(err)
	}
	if got := m.userGets.Load(); got != 2 {
		t.Fatalf("%d UserGet calls after Run returned, want 2 (none started)", got)
	}
	// A credential with no token yet is refused with a gRPC status, not
	// left waiting.
	_, err := tokens.token(context.Background(), Identity{User: "bob", Password: "pw"}, "")
	if status.Code(err) != codes.Canceled {
		t.Fatalf("a new credential after Run returned: %v, want code Canceled", err)
	}
}
