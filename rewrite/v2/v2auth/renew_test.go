package v2auth

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// fakeMember answers the calls a v2 handler makes as a member with auth on
// would: each Authenticate issues a new token; a call with any other token
// than the newest is refused as an expired token.
type fakeMember struct {
	mu      sync.Mutex
	issued  int
	current string
	calls   map[string]int
	perms   []*authpb.Permission
}

func (f *fakeMember) ClientConn() grpc.ClientConnInterface { return f }

func (f *fakeMember) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errors.New("no streams")
}

func (f *fakeMember) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
	if method == "/etcdserverpb.Auth/Authenticate" {
		if args.(*pb.AuthenticateRequest).Password != "pw" {
			return wire(rpctypes.ErrGRPCAuthFailed)
		}
		f.issued++
		f.current = fmt.Sprintf("token-%d", f.issued)
		reply.(*pb.AuthenticateResponse).Token = f.current
		return nil
	}
	if method == "/etcdserverpb.Auth/AuthStatus" {
		return nil // auth off; open to anyone
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	if tok := md.Get(rpctypes.TokenFieldNameGRPC); len(tok) != 1 || tok[0] != f.current {
		return wire(rpctypes.ErrGRPCInvalidAuthToken)
	}
	switch r := reply.(type) {
	case *pb.AuthUserGetResponse:
		r.Roles = []string{"app"}
	case *pb.AuthRoleGetResponse:
		r.Perm = f.perms
	case *pb.RangeResponse:
		r.Header = &pb.ResponseHeader{Revision: 7}
	}
	return nil
}

// wire is err as a client receives it.
func wire(err error) error { return status.Error(status.Code(err), rpctypes.ErrorDesc(err)) }

// TestTokenRenewedOnceByTheConnection: every handler's calls go through
// Tokens.Upstream; a token the member no longer accepts is replaced once
// and the call repeated, for any call, not only the keys handler's.
func TestTokenRenewedOnceByTheConnection(t *testing.T) {
	f := &fakeMember{calls: map[string]int{}, perms: []*authpb.Permission{{PermType: authpb.READWRITE, Key: []byte("/app/"), RangeEnd: []byte("/app0")}}}
	tokens := NewTokens(f, "", "", 8)
	up := tokens.Upstream(f)
	r := httptest.NewRequest("GET", "/v2/members", nil)
	r.SetBasicAuth("alice", "pw")
	call := func() error {
		ctx, _, err := tokens.Context(context.Background(), r)
		if err != nil {
			return err
		}
		_, err = etcdrpc.NewKVClient(up.ClientConn()).Range(ctx, &pb.RangeRequest{Key: []byte("/app/x")})
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	// The member forgets the token (it expired): the next call of any
	// handler renews it once and succeeds.
	f.mu.Lock()
	f.current = "expired"
	f.mu.Unlock()
	if err := call(); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if f.calls["/etcdserverpb.Auth/Authenticate"] != 2 {
		t.Fatalf("authenticated %d times, want 2", f.calls["/etcdserverpb.Auth/Authenticate"])
	}
	// The renewed entry carries the user's permissions, read with the new
	// token.
	for el := tokens.lru.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*entry); e.scope == nil || !e.scope.CanWrite([]byte("/app/x")) || e.scope.CanRead([]byte("/other"), nil) {
			t.Fatalf("scope after renewal: %+v", e.scope)
		}
	}
	// The token cached now is the renewed one: no further Authenticate.
	if err := call(); err != nil || f.calls["/etcdserverpb.Auth/Authenticate"] != 2 {
		t.Fatalf("third call: %v, %d authentications", err, f.calls["/etcdserverpb.Auth/Authenticate"])
	}
	// A refusal that a new token does not cure is not retried.
	r.SetBasicAuth("alice", "wrong")
	if err := call(); !errors.Is(err, etcderr.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	// Without credentials there is nothing to renew: the error is the
	// member's.
	anon := httptest.NewRequest("GET", "/v2/members", nil)
	ctx, _, _ := tokens.Context(context.Background(), anon)
	_, err := etcdrpc.NewKVClient(up.ClientConn()).Range(metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, "x"), &pb.RangeRequest{})
	if !etcderr.InvalidToken(err) {
		t.Fatalf("anonymous: %v", err)
	}
}

// TestScopeFromPermissions: the scope is the union of the roles' v3
// ranges; a v2 grant "/alice/*" covers what lies below /alice, not /alice.
func TestScopeFromPermissions(t *testing.T) {
	sc := newScope([]*authpb.Permission{
		{PermType: authpb.READWRITE, Key: []byte("/alice/"), RangeEnd: []byte("/alice0")},
		{PermType: authpb.READ, Key: []byte("/pub"), RangeEnd: []byte("/puc")},
		{PermType: authpb.READ, Key: []byte("/pubz/"), RangeEnd: []byte("/pubz0")}, // inside the one above
		{PermType: authpb.WRITE, Key: []byte("/only")},
		{PermType: authpb.READ, Key: []byte("/z"), RangeEnd: []byte{0}},
	})
	cases := []struct {
		key, end   string
		read, wrte bool
	}{
		{"/alice/b", "", true, true},
		{"/alice/", "", true, true},
		{"/alice/.", "", true, true},
		{"/alice/sub/", "/alice/sub0", true, false},
		{"/alice", "", false, false},
		{"/alice", "/alice0", false, false},
		{"/pub/x", "", true, false},
		{"/pub", "/puc", true, false},
		{"/pub", "/pud", false, false},
		{"/only", "", false, true},
		{"/only/x", "", false, false},
		{"/zz/top", "", true, false},
		{"/", "/0", false, false},
	}
	for _, c := range cases {
		t.Run(c.key+" "+c.end, func(t *testing.T) {
			var end []byte
			if c.end != "" {
				end = []byte(c.end)
			}
			if got := sc.CanRead([]byte(c.key), end); got != c.read {
				t.Errorf("CanRead = %v", got)
			}
			if c.end == "" {
				if got := sc.CanWrite([]byte(c.key)); got != c.wrte {
					t.Errorf("CanWrite = %v", got)
				}
			}
		})
	}
}

// TestBodyLimit: a body over --max-request-bytes is refused before it is
// decoded or anything is asked of the member.
func TestBodyLimit(t *testing.T) {
	f := &fakeMember{calls: map[string]int{}}
	tokens := NewTokens(f, "", "", 8)
	h := New(Options{Limits: v2edge.Limits{MaxRequestBytes: 64}}, tokens.Upstream(f), tokens)
	big := `{"user":"bob","password":"` + strings.Repeat("x", 100) + `"}`
	for _, path := range []string{"/v2/auth/users/bob", "/v2/auth/roles/bob"} {
		for _, declared := range []bool{true, false} {
			r := httptest.NewRequest("PUT", path, strings.NewReader(big))
			if !declared {
				r.ContentLength = -1 // chunked
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != 413 || rec.Body.String() != `{"message":"Request body too large."}` {
				t.Errorf("%s (declared %v): %d %s", path, declared, rec.Code, rec.Body)
			}
		}
	}
	delete(f.calls, "/etcdserverpb.Auth/AuthStatus") // may the caller use the API at all
	if len(f.calls) != 0 {
		t.Fatalf("the member was asked: %v", f.calls)
	}
}
