package gateway

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/protoadapt"
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

func TestDirectEqualsProtojson(t *testing.T) {
	m := newMarshaler()
	rnd := rand.New(rand.NewSource(1))
	bs := func() []byte {
		if rnd.Intn(4) == 0 {
			return nil
		}
		b := make([]byte, rnd.Intn(40))
		rnd.Read(b)
		return b
	}
	i64 := func() int64 {
		switch rnd.Intn(4) {
		case 0:
			return 0
		case 1:
			return -rnd.Int63()
		}
		return rnd.Int63()
	}
	hdr := func() *pb.ResponseHeader {
		if rnd.Intn(5) == 0 {
			return nil
		}
		return &pb.ResponseHeader{ClusterId: rnd.Uint64() >> uint(rnd.Intn(64)), MemberId: rnd.Uint64(), Revision: i64(), RaftTerm: uint64(rnd.Intn(3))}
	}
	kv := func() *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: bs(), Value: bs(), CreateRevision: i64(), ModRevision: i64(), Version: i64(), Lease: i64()}
	}
	var msgs []any
	for range 500 {
		r := &pb.RangeResponse{Header: hdr(), More: rnd.Intn(2) == 0, Count: i64()}
		for range rnd.Intn(4) {
			r.Kvs = append(r.Kvs, kv())
		}
		p := &pb.PutResponse{Header: hdr()}
		if rnd.Intn(2) == 0 {
			p.PrevKv = kv()
		}
		msgs = append(msgs, r, p)
	}
	msgs = append(msgs, &pb.RangeResponse{}, &pb.PutResponse{}, &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{}}})
	for _, v1 := range msgs {
		// As etcd's handlers hand them to the marshaler.
		v := protoadapt.MessageV2Of(v1.(protoadapt.MessageV1))
		raw, err := m.JSONPb.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want := compact(raw)
		got, err := m.Marshal(v)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Marshal(%v) = %s, %v\nprotojson       %s", v, got, err, want)
		}
		// The direct encoders, not a protojson fallback, made got.
		if !reflect.DeepEqual(protoadapt.MessageV1Of(v), v1) {
			t.Fatalf("MessageV1Of does not unwrap %T", v1)
		}
		var direct []byte
		switch r := v1.(type) {
		case *pb.RangeResponse:
			direct = appendRange(nil, r)
		case *pb.PutResponse:
			direct = appendPut(nil, r)
		}
		if !bytes.Equal(direct, want) {
			t.Fatalf("direct %s\nprotojson %s", direct, want)
		}
	}
}
