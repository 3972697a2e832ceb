package v2cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/etcdtest"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc"
)

func startEtcd(t *testing.T) (*embed.Etcd, *grpc.ClientConn) { return etcdtest.Start(t) }

type reply struct {
	code int
	body string
	hdr  http.Header
}

func do(t *testing.T, h http.Handler, method, path, ctype, body string) reply {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return reply{rec.Code, string(b), rec.Header()}
}

func TestMembersAgainstEtcd(t *testing.T) {
	e, cc := startEtcd(t)
	h := New(Options{AdvertiseClientURLs: []string{"http://shim-a:2379"}, MemberShimURLs: map[string]string{"m9": "http://shim-z:2379"}}, etcdtest.Upstream{Conn: cc})
	id := fmt.Sprintf("%x", uint64(e.Server.MemberID()))

	r := do(t, h, "GET", "/v2/members", "", "")
	want := fmt.Sprintf(`{"members":[{"id":"%s","name":"m0","peerURLs":["%s"],"clientURLs":["http://shim-a:2379"]}]}`+"\n", id, e.Config().AdvertisePeerUrls[0].String())
	if r.code != 200 || r.body != want || r.hdr.Get("X-Etcd-Cluster-Id") == "" {
		t.Fatalf("list: %d %q %v\nwant %q", r.code, r.body, r.hdr, want)
	}
	if r := do(t, h, "GET", "/v2/members/leader", "", ""); r.code != 200 || !strings.Contains(r.body, `"id":"`+id+`"`) {
		t.Fatalf("leader: %d %s", r.code, r.body)
	}
	if r := do(t, h, "GET", "/v2/machines", "", ""); r.code != 200 || r.body != "http://shim-a:2379" {
		t.Fatalf("machines: %d %q", r.code, r.body)
	}

	tests := []struct {
		name, method, path, ctype, body string
		code                            int
		want                            string
	}{
		{"other subpath", "GET", "/v2/members/foo", "", "", 404, `{"message":"Not found"}`},
		{"wrong method", "PATCH", "/v2/members", "", "", 405, "Method Not Allowed\n"},
		{"wrong content type", "POST", "/v2/members", "text/plain", `{"peerURLs":["http://127.0.0.1:1"]}`, 415, `{"message":"Bad Content-Type text/plain, accept application/json"}`},
		{"bad url", "POST", "/v2/members", "application/json", `{"peerURLs":["::"]}`, 400, ""},
		// 3.4 (types.NewURLs): the shim once sent these on, and answered
		// the member's refusal with a 500.
		{"no peer URLs", "POST", "/v2/members", "application/json", `{}`, 400, `{"message":"no valid URLs given"}`},
		{"empty peer URLs", "POST", "/v2/members", "application/json", `{"peerURLs":[]}`, 400, `{"message":"no valid URLs given"}`},
		{"other fields only", "POST", "/v2/members", "application/json", `{"user":5,"password":["a"],"grant":7}`, 400, `{"message":"no valid URLs given"}`},
		{"update without peer URLs", "PUT", "/v2/members/abc", "application/json", `{"user":5}`, 400, `{"message":"no valid URLs given"}`},
		{"duplicate peer", "POST", "/v2/members", "application/json", `{"peerURLs":["` + e.Config().AdvertisePeerUrls[0].String() + `"]}`, 409, `{"message":"membership: peerURL exists"}`},
		{"update unknown", "PUT", "/v2/members/1234", "application/json", `{"peerURLs":["http://127.0.0.1:9"]}`, 404, `{"message":"No such member: 1234"}`},
		{"update without id", "PUT", "/v2/members", "application/json", `{}`, 405, "Method Not Allowed\n"},
		{"delete unknown", "DELETE", "/v2/members/1234", "", "", 404, `{"message":"No such member: 1234"}`},
		{"delete bad id", "DELETE", "/v2/members/zz", "", "", 404, `{"message":"No such member: zz"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, h, tt.method, tt.path, tt.ctype, tt.body)
			if r.code != tt.code || (tt.want != "" && r.body != tt.want) {
				t.Fatalf("%d %q, want %d %q", r.code, r.body, tt.code, tt.want)
			}
		})
	}

	// Update and remove need quorum: use a learner, which does not count
	// towards it (and which the v2 listing leaves out, as 3.4 has none).
	lr, err := etcdrpc.NewClusterClient(cc).MemberAdd(context.Background(), &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:8"}, IsLearner: true})
	if err != nil {
		t.Fatal(err)
	}
	lid := fmt.Sprintf("%x", lr.Member.ID)
	if r := do(t, h, "GET", "/v2/members", "", ""); strings.Contains(r.body, lid) {
		t.Fatalf("learner listed: %s", r.body)
	}
	if r := do(t, h, "PUT", "/v2/members/"+lid, "application/json", `{"peerURLs":["http://127.0.0.1:10"]}`); r.code != 204 {
		t.Fatalf("update: %d %s", r.code, r.body)
	}
	if r := do(t, h, "DELETE", "/v2/members/"+lid, "", ""); r.code != 204 {
		t.Fatalf("remove: %d %s", r.code, r.body)
	}
	if r := do(t, h, "DELETE", "/v2/members/"+lid, "", ""); r.code != 410 || r.body != `{"message":"Member permanently removed: `+lid+`"}` {
		t.Fatalf("second remove: %d %s", r.code, r.body)
	}

	// Last: adding a voting member to a one-member cluster loses quorum.
	r = do(t, h, "POST", "/v2/members", "application/json", `{"peerURLs":["http://127.0.0.1:9"]}`)
	if r.code != 201 || !strings.Contains(r.body, `"name":"","peerURLs":["http://127.0.0.1:9"],"clientURLs":[]`) {
		t.Fatalf("add: %d %s", r.code, r.body)
	}
	newID := strings.Split(strings.Split(r.body, `"id":"`)[1], `"`)[0]
	if r := do(t, h, "GET", "/v2/members", "", ""); !strings.Contains(r.body, `{"id":"`+newID+`","name":"","peerURLs":["http://127.0.0.1:9"],"clientURLs":[]}`) {
		t.Fatalf("unstarted member listed as %s", r.body)
	}
}

func TestStatsAgainstEtcd(t *testing.T) {
	e, cc := startEtcd(t)
	h := New(Options{StoreStats: func() StoreStats { return StoreStats{GetSuccess: 7} }}, etcdtest.Upstream{Conn: cc})
	id := fmt.Sprintf("%x", uint64(e.Server.MemberID()))
	r := do(t, h, "GET", "/v2/stats/self", "", "")
	if r.code != 200 || !strings.Contains(r.body, `"name":"m0","id":"`+id+`","state":"StateLeader"`) || !strings.Contains(r.body, `"leaderInfo":{"leader":"`+id+`"`) {
		t.Fatalf("self: %d %s", r.code, r.body)
	}
	if r := do(t, h, "GET", "/v2/stats/leader", "", ""); r.code != 200 || r.body != `{"leader":"`+id+`","followers":{}}` {
		t.Fatalf("leader: %d %s", r.code, r.body)
	}
	if r := do(t, h, "GET", "/v2/stats/store", "", ""); r.code != 200 || !strings.HasPrefix(r.body, `{"getsSuccess":7,"getsFail":0,"setsSuccess":0`) {
		t.Fatalf("store: %d %s", r.code, r.body)
	}
	if r := do(t, h, "POST", "/v2/stats/self", "", ""); r.code != 405 || r.hdr.Get("Allow") != "GET" {
		t.Fatalf("method: %d %v", r.code, r.hdr)
	}
}
