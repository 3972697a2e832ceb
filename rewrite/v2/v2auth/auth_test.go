package v2auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
)

func startEtcd(t *testing.T) *grpc.ClientConn {
	_, cc := etcdtest.Start(t)
	return cc
}

type step struct {
	name, method, path, user, body string
	code                           int
	want                           string // exact body, or prefix when it ends in "…"
}

func run(t *testing.T, h http.Handler, steps []step) {
	t.Helper()
	for _, s := range steps {
		req := httptest.NewRequest(s.method, s.path, strings.NewReader(s.body))
		if s.user != "" {
			u, p, _ := strings.Cut(s.user, ":")
			req.SetBasicAuth(u, p)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Body)
		got := string(body)
		ok := rec.Code == s.code
		if strings.HasSuffix(s.want, "…") {
			ok = ok && strings.HasPrefix(got, strings.TrimSuffix(s.want, "…"))
		} else {
			ok = ok && got == s.want
		}
		if !ok {
			t.Fatalf("%s: %s %s → %d %q, want %d %q", s.name, s.method, s.path, rec.Code, got, s.code, s.want)
		}
	}
}

func TestV2AuthOnV3(t *testing.T) {
	cc := startEtcd(t)
	up := etcdtest.Upstream{Conn: cc}
	tokens := NewTokens(up, "", "", 8)
	h := New(Options{Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}, up, tokens)
	run(t, h, []step{
		{"status", "GET", "/v2/auth/enable", "", "", 200, "{\"enabled\":false}\n"},
		{"enable without root", "PUT", "/v2/auth/enable", "", "", 409, `{"message":"auth: No root user available, please create one"}`},
		{"bad json", "PUT", "/v2/auth/users/root", "", "{", 400, `{"message":"Invalid JSON in request body."}`},
		{"name mismatch", "PUT", "/v2/auth/users/root", "", `{"user":"x","password":"p"}`, 400, `{"message":"User JSON name does not match the name in the URL"}`},
		{"empty password", "PUT", "/v2/auth/users/bob", "", `{"user":"bob"}`, 400, `{"message":"auth: Cannot create user bob with an empty password"}`},
		{"create root", "PUT", "/v2/auth/users/root", "", `{"user":"root","password":"rootpw"}`, 201, "{\"user\":\"root\",\"roles\":[\"root\"]}\n"},
		{"create role", "PUT", "/v2/auth/roles/app", "", `{"role":"app","permissions":{"kv":{"read":["/app*"],"write":["/app*"]}}}`, 201, "{\"role\":\"app\",\"permissions\":{\"kv\":{\"read\":[\"/app*\"],\"write\":[\"/app*\"]}}}\n"},
		{"duplicate role", "PUT", "/v2/auth/roles/app", "", `{"role":"app"}`, 409, `{"message":"auth: Role app already exists."}`},
		{"modify root role", "PUT", "/v2/auth/roles/root", "", `{"role":"root"}`, 403, `{"message":"auth: Cannot modify role root: is root role."}`},
		{"create alice", "PUT", "/v2/auth/users/alice", "", `{"user":"alice","password":"alicepw"}`, 201, "{\"user\":\"alice\",\"roles\":null}\n"},
		{"grant", "PUT", "/v2/auth/users/alice", "", `{"user":"alice","grant":["app"]}`, 200, "{\"user\":\"alice\",\"roles\":[\"app\"]}\n"},
		{"duplicate grant", "PUT", "/v2/auth/users/alice", "", `{"user":"alice","grant":["app"]}`, 409, `{"message":"auth: Granting duplicate role app for user alice"}`},
		{"ungranted revoke", "PUT", "/v2/auth/users/alice", "", `{"user":"alice","revoke":["nope"]}`, 409, `{"message":"auth: Revoking ungranted role nope for user alice"}`},
		{"roles and grant", "PUT", "/v2/auth/users/alice", "", `{"user":"alice","roles":["a"],"grant":["b"]}`, 400, `{"message":"User JSON contains both roles and grant/revoke"}`},
		{"no-op update", "PUT", "/v2/auth/users/alice", "", `{"user":"alice"}`, 400, `{"message":"auth: User not updated. Use grant/revoke/password to update the user."}`},
		{"get user", "GET", "/v2/auth/users/alice", "", "", 200, "{\"user\":\"alice\",\"roles\":[{\"role\":\"app\",\"permissions\":{\"kv\":{\"read\":[\"/app*\"],\"write\":[\"/app*\"]}}}]}\n"},
		{"missing user", "GET", "/v2/auth/users/zed", "", "", 404, `{"message":"auth: User zed does not exist."}`},
		{"missing role", "GET", "/v2/auth/roles/zed", "", "", 404, `{"message":"auth: Role zed does not exist."}`},
		{"list roles", "GET", "/v2/auth/roles", "", "", 200, "{\"roles\":[{\"role\":\"app\",\"permissions\":{\"kv\":{\"read\":[\"/app*\"],\"write\":[\"/app*\"]}}},{\"role\":\"root\",\"permissions\":{\"kv\":{\"read\":[\"/*\"],\"write\":[\"/*\"]}}}]}\n"},
		{"enable", "PUT", "/v2/auth/enable", "", "", 200, ""},
		{"enable again", "PUT", "/v2/auth/enable", "root:rootpw", "", 409, `{"message":"auth: already enabled"}`},
		{"list users anonymous", "GET", "/v2/auth/users", "", "", 401, `{"message":"Insufficient credentials"}`},
		{"list users as alice", "GET", "/v2/auth/users", "alice:alicepw", "", 401, `{"message":"Insufficient credentials"}`},
		{"list users wrong password", "GET", "/v2/auth/users", "root:nope", "", 401, `{"message":"Insufficient credentials"}`},
		{"list users as root", "GET", "/v2/auth/users", "root:rootpw", "", 200, "{\"users\":[{\"user\":\"alice\",…"},
		{"delete root while enabled", "DELETE", "/v2/auth/users/root", "root:rootpw", "", 403, `{"message":"auth: Cannot delete root user while auth is enabled."}`},
		{"revoke write", "PUT", "/v2/auth/roles/app", "root:rootpw", `{"role":"app","revoke":{"kv":{"write":["/app*"]}}}`, 200, "{\"role\":\"app\",\"permissions\":{\"kv\":{\"read\":[\"/app*\"],\"write\":[]}}}\n"},
		{"grant write back", "PUT", "/v2/auth/roles/app", "root:rootpw", `{"role":"app","grant":{"kv":{"write":["/app*"]}}}`, 200, "{\"role\":\"app\",\"permissions\":{\"kv\":{\"read\":[\"/app*\"],\"write\":[\"/app*\"]}}}\n"},
	})

	// The member enforces alice's v2 permissions on the v2 layout's keys.
	kv := etcdrpc.NewKVClient(tokens.Upstream(up).ClientConn()) // the one credential path
	req := httptest.NewRequest("PUT", "/v2/keys/app/x", nil)
	req.SetBasicAuth("alice", "alicepw")
	ctx, _, err := tokens.Context(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("/app/x"), Value: []byte("1")}); err != nil {
		t.Fatalf("alice writes /app/x: %v", err)
	}
	if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("/other"), Value: []byte("1")}); err == nil {
		t.Fatal("alice wrote /other")
	}
	if _, err := kv.Put(context.Background(), &pb.PutRequest{Key: []byte("/app/y"), Value: []byte("1")}); err == nil {
		t.Fatal("anonymous write succeeded with auth on")
	}
	bad := httptest.NewRequest("GET", "/v2/keys/app", nil)
	bad.SetBasicAuth("alice", "wrong")
	if _, _, err := tokens.Context(context.Background(), bad); !errors.Is(err, etcderr.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if tokens.Len() != 2 {
		t.Fatalf("%d cached tokens, want root and alice", tokens.Len())
	}

	// A password change (etcdctl user passwd) invalidates the old password,
	// even though a token for it is cached.
	run(t, h, []step{
		{"change password", "PUT", "/v2/auth/users/alice", "root:rootpw", `{"user":"alice","password":"alicepw2"}`, 200, "{\"user\":\"alice\",\"roles\":[\"app\"]}\n"},
	})
	kvAs := func(pw string) error {
		r := httptest.NewRequest("PUT", "/v2/keys/app/x", nil)
		r.SetBasicAuth("alice", pw)
		return tokens.Do(context.Background(), r, func(ctx context.Context) error {
			_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("/app/x"), Value: []byte("2")})
			return err
		})
	}
	if err := kvAs("alicepw2"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if err := kvAs("alicepw"); !errors.Is(err, etcderr.ErrBadCredentials) {
		t.Fatalf("old password after the change: %v", err)
	}

	run(t, h, []step{
		// 3.4 keeps the auth API to root while auth is on, though v3 lets a
		// user read itself and its roles; its status is open to anyone.
		{"alice reads herself", "GET", "/v2/auth/users/alice", "alice:alicepw2", "", 401, `{"message":"Insufficient credentials"}`},
		{"alice reads her role", "GET", "/v2/auth/roles/app", "alice:alicepw2", "", 401, `{"message":"Insufficient credentials"}`},
		{"enable as alice", "PUT", "/v2/auth/enable", "alice:alicepw2", "", 401, `{"message":"Insufficient credentials"}`},
		{"enable anonymously", "PUT", "/v2/auth/enable", "", "", 401, `{"message":"Insufficient credentials"}`},
		{"status with a wrong password", "GET", "/v2/auth/enable", "alice:nope", "", 200, "{\"enabled\":true}\n"},
		{"status anonymously", "GET", "/v2/auth/enable", "", "", 200, "{\"enabled\":true}\n"},
		{"disable as alice", "DELETE", "/v2/auth/enable", "alice:alicepw2", "", 401, `{"message":"Insufficient credentials"}`},
		{"disable", "DELETE", "/v2/auth/enable", "root:rootpw", "", 200, ""},
		{"disable again", "DELETE", "/v2/auth/enable", "", "", 409, `{"message":"auth: already disabled"}`},
		{"delete role", "DELETE", "/v2/auth/roles/app", "", "", 200, ""},
		{"delete missing role", "DELETE", "/v2/auth/roles/app", "", "", 404, `{"message":"auth: Role app does not exist."}`},
		{"bad method", "POST", "/v2/auth/users", "", "", 405, "Method Not Allowed\n"},
		{"bad path", "GET", "/v2/auth/users/a/b", "", "", 400, `{"message":"Invalid path"}`},
	})
}

func TestTokenCacheIsBounded(t *testing.T) {
	tk := NewTokens(nil, "", "", 2)
	for i := 0; i < 5; i++ {
		tk.store(entry{key: credKey(Identity{User: fmt.Sprint(i)}), user: fmt.Sprint(i), token: "tok"})
	}
	tk.store(entry{key: credKey(Identity{User: "3"}), user: "3", token: "tok2"}) // refresh an entry: no growth
	if tk.Len() != 2 || len(tk.byKey) != 2 {
		t.Fatalf("cache holds %d/%d, want 2", tk.Len(), len(tk.byKey))
	}
	if _, ok := tk.byKey[credKey(Identity{User: "0"})]; ok {
		t.Fatal("the least recently used entry was kept")
	}
}

func TestPermissionMapping(t *testing.T) {
	tests := []struct{ prefix, path, key, end, back string }{
		{"", "/app*", "/app", "/apq", "/app*"},
		{"", "/app", "/app", "", "/app"},
		{"/v2", "/*", "/v2/", "/v20", "/*"},
		{"/v2", "/a/b", "/v2/a/b", "", "/a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+tt.path, func(t *testing.T) {
			p := toV3(tt.prefix, tt.path)
			if p.key != tt.key || p.rangeEnd != tt.end {
				t.Fatalf("toV3 = %q %q", p.key, p.rangeEnd)
			}
			back, ok := toV2(tt.prefix, &authpb.Permission{Key: []byte(p.key), RangeEnd: []byte(p.rangeEnd)})
			if !ok || back != tt.back {
				t.Fatalf("toV2 = %q %v, want %q", back, ok, tt.back)
			}
		})
	}
}
