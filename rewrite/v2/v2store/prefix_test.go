package v2store_test

import (
	"context"
	"testing"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	v2 "github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// testPrefix: with --v2-prefix, v2 keys land under the prefix in v3 (files
// as is, directories as markers, directory records), v3 keys written there are
// v2 nodes, and nothing outside the prefix is visible.
func testPrefix(t *testing.T, cc *grpc.ClientConn) {
	ctx := context.Background()
	const prefix = "/unit-prefix"
	s := v2.NewV3(cc, prefix)
	kv := etcdrpc.NewKVClient(cc)
	v3get := func(t *testing.T, key string) *pb.RangeResponse {
		t.Helper()
		r, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte(key)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	v3put := func(t *testing.T, key, value string) {
		t.Helper()
		if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte(value)}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("v2 writes land under the prefix", func(t *testing.T) {
		ev, _, err := s.Put(ctx, "/dir/key", v2.SetOptions{Value: "from v2"})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ key, value string }{
			{prefix + "/dir/key", "from v2"},
			{prefix + "/dir/", ""},            // the parent's marker
			{prefix + "/dir/.", v2.ActionSet}, // the directory's record
		} {
			r := v3get(t, c.key)
			if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != c.value {
				t.Errorf("v3 %s = %v, want %q", c.key, r.Kvs, c.value)
				continue
			}
			if c.key == prefix+"/dir/key" && uint64(r.Kvs[0].ModRevision) != ev.Node.ModifiedIndex {
				t.Errorf("v3 mod revision %d, v2 modifiedIndex %d", r.Kvs[0].ModRevision, ev.Node.ModifiedIndex)
			}
		}
		if r := v3get(t, "/dir/key"); len(r.Kvs) != 0 {
			t.Errorf("v2 write leaked outside the prefix: %v", r.Kvs)
		}
	})

	t.Run("v3 writes are v2 nodes", func(t *testing.T) {
		v3put(t, prefix+"/v3key", "from v3")
		v3put(t, prefix+"/v3dir/a", "A")
		v3put(t, prefix+"/v3dir/b", "B")
		ev, _, err := s.Get(ctx, "/v3key", v2.GetOptions{})
		if err != nil || ev.Node.Value == nil || *ev.Node.Value != "from v3" {
			t.Fatalf("get /v3key: %+v %v", ev, err)
		}
		ev, _, err = s.Get(ctx, "/v3dir", v2.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !ev.Node.Dir || len(ev.Node.Nodes) != 2 || ev.Node.Nodes[0].Key != "/v3dir/a" || ev.Node.Nodes[1].Key != "/v3dir/b" {
			t.Errorf("a dir made by v3 keys: %+v", ev.Node)
		}
		// An implied dir reports the smallest create revision below it
		// (accepted difference 9).
		if ev.Node.CreatedIndex == 0 || ev.Node.CreatedIndex != ev.Node.Nodes[0].CreatedIndex {
			t.Errorf("implied dir indexes %d, first child created %d", ev.Node.CreatedIndex, ev.Node.Nodes[0].CreatedIndex)
		}
		// v2 updates what v3 wrote, and v3 reads it back.
		if _, _, err := s.Put(ctx, "/v3key", v2.SetOptions{Value: "changed", PrevValue: "from v3"}); err != nil {
			t.Fatal(err)
		}
		if r := v3get(t, prefix+"/v3key"); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "changed" {
			t.Errorf("v3 reads %v after the v2 compareAndSwap", r.Kvs)
		}
	})

	t.Run("outside the prefix is invisible", func(t *testing.T) {
		v3put(t, "/outside", "x")
		v3put(t, prefix+"-sibling/x", "x") // shares the prefix's bytes, not its directory
		if _, _, err := s.Get(ctx, "/outside", v2.GetOptions{}); !isCode(err, v2.EcodeKeyNotFound) {
			t.Errorf("get /outside: %v", err)
		}
		root, _, err := s.Get(ctx, "/", v2.GetOptions{Recursive: true})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, n := range root.Node.Nodes {
			keys = append(keys, n.Key)
		}
		want := []string{"/dir", "/v3dir", "/v3key"} // the action key is hidden
		if len(keys) != len(want) {
			t.Fatalf("root lists %q, want %q", keys, want)
		}
		for i := range want {
			if keys[i] != want[i] {
				t.Errorf("root lists %q, want %q", keys, want)
			}
		}
	})

	t.Run("no prefix", func(t *testing.T) {
		plain := v2.NewV3(cc, "")
		// The prefixed store's data is a v2 directory named after the prefix.
		ev, _, err := plain.Get(ctx, prefix+"/dir/key", v2.GetOptions{})
		if err != nil || *ev.Node.Value != "from v2" {
			t.Fatalf("get %s without prefix: %+v %v", prefix+"/dir/key", ev, err)
		}
		if _, _, err := plain.Put(ctx, "/plain-key", v2.SetOptions{Value: "p"}); err != nil {
			t.Fatal(err)
		}
		if r := v3get(t, "/plain-key"); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "p" {
			t.Errorf("v3 /plain-key = %v", r.Kvs)
		}
		if _, _, err := s.Get(ctx, "/plain-key", v2.GetOptions{}); !isCode(err, v2.EcodeKeyNotFound) {
			t.Errorf("prefixed store sees /plain-key: %v", err)
		}
	})
}

func isCode(err error, code int) bool {
	ve, ok := err.(*v2.Error)
	return ok && ve.Code == code
}
