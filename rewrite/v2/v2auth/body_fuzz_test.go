package v2auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
)

// emptyUpstream answers every call with an empty, successful reply: the
// fuzzer reaches every branch that follows a member's answer without a
// member.
type emptyUpstream struct{}

func (emptyUpstream) Invoke(context.Context, string, any, any, ...grpc.CallOption) error { return nil }

func (emptyUpstream) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, context.Canceled
}

type emptyConn struct{}

func (emptyConn) ClientConn() grpc.ClientConnInterface { return emptyUpstream{} }

// FuzzAuthBodies sends arbitrary JSON bodies to the v2 auth routes that read
// one (users, roles, enable): the answer is a status below 600 whose body is
// JSON or empty (405 excepted: plain text, as in 3.4), never a panic.
func FuzzAuthBodies(f *testing.F) {
	paths := []string{"/v2/auth/users/alice", "/v2/auth/roles/app", "/v2/auth/enable", "/v2/auth/users/root", "/v2/auth/roles/root", "/v2/auth/users", "/v2/auth/roles"}
	f.Add(uint8(0), `{"user":"alice","password":"p","grant":["app"]}`)
	f.Add(uint8(0), `{"user":"alice","roles":["a"],"revoke":["b"]}`)
	f.Add(uint8(1), `{"role":"app","permissions":{"kv":{"read":["/a*"],"write":["/b"]}},"grant":{"kv":{"read":["*"]}},"revoke":{"kv":{"write":["/x*"]}}}`)
	f.Add(uint8(2), ``)
	f.Add(uint8(3), `{"user":"root","password":"`+strings.Repeat("x", 300)+`"}`)
	f.Add(uint8(4), `{"role":"root","permissions":null}`)
	f.Add(uint8(1), `{"role":"app","permissions":{"kv":{"read":[""]}}}`)
	up := emptyConn{}
	h := New(Options{}, up, NewTokens(up, "", "", 4))
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		path := paths[int(which)%len(paths)]
		for _, m := range []string{http.MethodPut, http.MethodGet, http.MethodDelete} {
			req := httptest.NewRequest(m, path, strings.NewReader(body))
			if which&0x80 != 0 {
				req.SetBasicAuth("root", body)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code < 200 || rec.Code > 599 {
				t.Fatalf("%s %s %q: status %d", m, path, body, rec.Code)
			}
			// 405 is plain text, as 3.4's allowMethod answers it.
			if b := strings.TrimSpace(rec.Body.String()); rec.Code != http.StatusMethodNotAllowed && b != "" && !json.Valid([]byte(b)) {
				t.Fatalf("%s %s %q: %d with a body that is not JSON: %q", m, path, body, rec.Code, b)
			}
		}
	})
}
