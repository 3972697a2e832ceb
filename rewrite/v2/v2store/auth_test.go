package v2store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/etcdtest"
	v2 "github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"
)

// prefixScope is a grant of one v3 prefix, read and write.
type prefixScope struct{ prefix []byte }

func (s prefixScope) in(k []byte) bool { return bytes.HasPrefix(k, s.prefix) }

func (s prefixScope) CanRead(key, end []byte) bool {
	if end == nil {
		return s.in(key)
	}
	return s.in(key) && len(end) > 0 && (s.in(end) || bytes.Equal(end, prefixEnd(s.prefix)))
}

func (s prefixScope) CanWrite(key []byte) bool { return s.in(key) }

func prefixEnd(k []byte) []byte {
	end := append([]byte(nil), k...)
	end[len(end)-1]++
	return end
}

// TestPrefixUserWithAuth: with auth on, a user whose only permission is the
// v3 prefix /alice/ (the mapping of the v2 grant "/alice/*") does every v2
// operation inside it through the store, as 3.4 lets that role; the member
// refuses any transaction with a compare or operation outside the grant, so
// this fails if the store touches /alice, the root or a global key.
func TestPrefixUserWithAuth(t *testing.T) {
	_, cc := etcdtest.Start(t)
	ctx := context.Background()
	ac := etcdrpc.NewAuthClient(cc)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ac.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "root", Password: "rootpw"}))
	must(ac.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}))
	must(ac.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: "alicerole"}))
	must(ac.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: "alicerole", Perm: &authpb.Permission{
		PermType: authpb.READWRITE, Key: []byte("/alice/"), RangeEnd: []byte("/alice0")}}))
	must(ac.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "alice", Password: "alicepw"}))
	must(ac.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "alice", Role: "alicerole"}))
	must(ac.AuthEnable(ctx, &pb.AuthEnableRequest{}))
	tok, err := ac.Authenticate(ctx, &pb.AuthenticateRequest{Name: "alice", Password: "alicepw"})
	if err != nil {
		t.Fatal(err)
	}
	actx := metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, tok.Token)
	s := v2.NewV3(cc, "")
	scoped := v2.WithScope(actx, prefixScope{prefix: []byte("/alice/")})
	steps := []struct {
		name string
		call func(ctx context.Context) (*v2.Event, error)
		want string // action, or the v2 error code as text
	}{
		{"set", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Put(ctx, "/alice/b", v2.SetOptions{Value: "1"})
			return ev, err
		}, v2.ActionSet},
		{"set deep (new parents)", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Put(ctx, "/alice/sub/deep/x", v2.SetOptions{Value: "1"})
			return ev, err
		}, v2.ActionSet},
		{"get", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Get(ctx, "/alice/b", v2.GetOptions{})
			return ev, err
		}, v2.ActionGet},
		{"quorum get", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Get(ctx, "/alice/b", v2.GetOptions{Quorum: true})
			return ev, err
		}, v2.ActionGet},
		{"recursive listing", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Get(ctx, "/alice/sub", v2.GetOptions{Recursive: true})
			return ev, err
		}, v2.ActionGet},
		{"missing below a missing dir", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Get(ctx, "/alice/nope/x", v2.GetOptions{})
			return ev, err
		}, "100"},
		{"cas", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Put(ctx, "/alice/b", v2.SetOptions{Value: "2", PrevValue: "1"})
			return ev, err
		}, v2.ActionCompareAndSwap},
		{"cas fails", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Put(ctx, "/alice/b", v2.SetOptions{Value: "3", PrevValue: "1"})
			return ev, err
		}, "101"},
		{"create exists", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Put(ctx, "/alice/b", v2.SetOptions{Value: "3", PrevExist: boolp(false)})
			return ev, err
		}, "105"},
		{"file above", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Put(ctx, "/alice/b/c", v2.SetOptions{Value: "3"})
			return ev, err
		}, "104"},
		{"refresh", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Put(ctx, "/alice/b", v2.SetOptions{TTL: ttlp(100), Refresh: true, PrevExist: boolp(true)})
			return ev, err
		}, v2.ActionUpdate},
		{"in-order create", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.CreateInOrder(ctx, "/alice/q", v2.SetOptions{Value: "job"})
			return ev, err
		}, v2.ActionCreate},
		{"mkdir", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Put(ctx, "/alice/d", v2.SetOptions{Dir: true})
			return ev, err
		}, v2.ActionSet},
		{"rmdir", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Delete(ctx, "/alice/d", v2.DeleteOptions{Dir: true})
			return ev, err
		}, v2.ActionDelete},
		{"cad", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Delete(ctx, "/alice/b", v2.DeleteOptions{PrevValue: "2"})
			return ev, err
		}, v2.ActionCompareAndDelete},
		{"recursive delete", func(ctx context.Context) (*v2.Event, error) {
			ev, _, err := s.Delete(ctx, "/alice/sub", v2.DeleteOptions{Recursive: true})
			return ev, err
		}, v2.ActionDelete},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ev, err := st.call(scoped)
			got := ""
			var ve *v2.Error
			switch {
			case errors.As(err, &ve):
				got = itoa(ve.Code)
			case err != nil:
				t.Fatalf("%v", err)
			default:
				got = ev.Action
			}
			if got != st.want {
				t.Fatalf("got %s, want %s", got, st.want)
			}
		})
	}
	// Without the scope the store asks for what lies outside the grant
	// (the key /alice above it) and the member refuses the whole write.
	if _, _, err := s.Put(actx, "/alice/unscoped", v2.SetOptions{Value: "x"}); !etcderr.Denied(err) {
		t.Fatalf("an unscoped write by alice: %v", err)
	}
	// The records of alice's writes lie inside her grant; nothing else was
	// written outside /alice/.
	rctx := rootCtx(t, ac)
	r, err := etcdrpc.NewKVClient(cc).Range(rctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range r.Kvs {
		if !bytes.HasPrefix(kv.Key, []byte("/alice/")) {
			t.Errorf("a key outside the grant: %q", kv.Key)
		}
	}
}

func rootCtx(t *testing.T, ac pb.AuthClient) context.Context {
	t.Helper()
	tok, err := ac.Authenticate(context.Background(), &pb.AuthenticateRequest{Name: "root", Password: "rootpw"})
	if err != nil {
		t.Fatal(err)
	}
	return metadata.AppendToOutgoingContext(context.Background(), rpctypes.TokenFieldNameGRPC, tok.Token)
}

func itoa(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}
