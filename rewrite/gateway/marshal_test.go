package gateway

import (
	"bytes"
	"encoding/json"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestCompactEqualsJSONCompact(t *testing.T) {
	m := newMarshaler()
	msgs := []any{
		&pb.RangeResponse{Header: &pb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 3, RaftTerm: 4},
			Kvs:   []*mvccpb.KeyValue{{Key: []byte("a b"), Value: []byte(`"\ {} [ ]`), CreateRevision: 1, ModRevision: 2, Version: 3, Lease: 4}},
			Count: 1, More: true},
		&pb.PutResponse{Header: &pb.ResponseHeader{Revision: 9}},
		&pb.AuthenticateResponse{Token: `to ken "x" \ y`},
		&pb.MemberListResponse{Members: []*pb.Member{{Name: "a \t b \\\" c", PeerURLs: []string{"http://x y", "z"}}}},
		map[string]any{"s": "a \" \\ b", "n": []int{1, 2}},
	}
	for _, v := range msgs {
		raw, err := m.JSONPb.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, raw); err != nil {
			t.Fatal(err)
		}
		if got := compact(append([]byte(nil), raw...)); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("compact(%s) = %s, want %s", raw, got, want.Bytes())
		}
	}
	for _, s := range []string{` { "a" : [ 1 , "x \" y" ] , "b\\" : "\\" } `, "{\n\t\"k\":\r\n\"v\\\\\"}"} {
		var want bytes.Buffer
		if err := json.Compact(&want, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if got := compact([]byte(s)); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("compact(%q) = %s, want %s", s, got, want.Bytes())
		}
	}
}
