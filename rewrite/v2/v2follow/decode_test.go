package v2follow

import (
	"math/rand/v2"
	"reflect"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// randomResponse is a watch response with any of the fields set, as a
// member may send it.
func randomResponse(rng *rand.Rand) *pb.WatchResponse {
	bytesOf := func() []byte {
		if rng.IntN(4) == 0 {
			return nil
		}
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	// Zero, negative (ten bytes on the wire), and positive of any width.
	i64 := func() int64 { return []int64{0, -rng.Int64(), rng.Int64N(1 << uint(rng.IntN(62)+1))}[rng.IntN(3)] }
	kv := func() *mvccpb.KeyValue {
		if rng.IntN(3) == 0 {
			return nil
		}
		return &mvccpb.KeyValue{Key: bytesOf(), CreateRevision: i64(), ModRevision: i64(), Version: i64(), Value: bytesOf(), Lease: i64()}
	}
	r := &pb.WatchResponse{WatchId: i64(), Created: rng.IntN(2) == 0, Canceled: rng.IntN(5) == 0, CompactRevision: i64(),
		Fragment: rng.IntN(5) == 0}
	if rng.IntN(5) == 0 {
		r.CancelReason = string(bytesOf())
	}
	if rng.IntN(6) != 0 {
		r.Header = &pb.ResponseHeader{ClusterId: rng.Uint64(), MemberId: rng.Uint64(), Revision: i64(), RaftTerm: rng.Uint64()}
	}
	for range rng.IntN(6) {
		r.Events = append(r.Events, &mvccpb.Event{Type: mvccpb.Event_EventType(rng.IntN(2)), Kv: kv(), PrevKv: kv()})
	}
	return r
}

// generated decodes b with the generated code.
func generated(t testing.TB, b []byte) (*pb.WatchResponse, error) {
	t.Helper()
	m := &pb.WatchResponse{}
	err := m.Unmarshal(b)
	return m, err
}

// TestDecodeWatchResponse: the codec's decoding equals the generated
// code's for random responses, and for those the fast decoder leaves to it
// (unknown fields, repeated singular messages, truncation) through the
// fallback.
func TestDecodeWatchResponse(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 20))
	codec := watchCodec{}
	check := func(t *testing.T, b []byte, wantFast bool) {
		t.Helper()
		want, wantErr := generated(t, b)
		var fast pb.WatchResponse
		if got := decodeWatchResponse(append([]byte(nil), b...), &fast); got != wantFast {
			t.Fatalf("fast decoder took it: %v, want %v", got, wantFast)
		}
		got := &pb.WatchResponse{}
		err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(append([]byte(nil), b...))}, got)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("error %v, generated code's %v", err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded\n%v\nwant\n%v", got, want)
		}
	}
	for i := range 2000 {
		r := randomResponse(rng)
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		check(t, b, true)
		if i == 0 {
			continue
		}
		// A field the fast decoder does not know: the generated code keeps it.
		check(t, protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), b...), 99, protowire.VarintType), 5), false)
		if r.Header != nil {
			hb, _ := r.Header.Marshal()
			// A header given twice is merged by the generated code.
			check(t, protowire.AppendBytes(protowire.AppendTag(append([]byte(nil), b...), 1, protowire.BytesType), hb), false)
		}
		if len(b) > 1 {
			if _, wantErr := generated(t, b[:len(b)-1]); wantErr != nil {
				check(t, b[:len(b)-1], false)
			}
		}
	}
}

// TestDecodedKeysStayApart: a decoded key or value shares the message's
// copy with what follows it; appending to one must not change the other.
func TestDecodedKeysStayApart(t *testing.T) {
	r := &pb.WatchResponse{Events: []*mvccpb.Event{
		{Kv: &mvccpb.KeyValue{Key: []byte("/a"), Value: []byte("x"), ModRevision: 2}, PrevKv: &mvccpb.KeyValue{Key: []byte("/a"), Value: []byte("w")}},
		{Kv: &mvccpb.KeyValue{Key: []byte("/b"), Value: []byte("y"), ModRevision: 2}},
	}}
	b, _ := r.Marshal()
	var m pb.WatchResponse
	if !decodeWatchResponse(b, &m) {
		t.Fatal("not decoded")
	}
	_ = append(m.Events[0].Kv.Key, "zzzz"...)
	_ = append(m.Events[0].Kv.Value, "zzzz"...)
	if !reflect.DeepEqual(&m, r) {
		t.Fatalf("after appends: %v, want %v", &m, r)
	}
}

// BenchmarkWatchDecode: one watch response of a v2 set (the key and the
// directory record, each with its previous value), generated code against
// the follower's codec.
func BenchmarkWatchDecode(b *testing.B) {
	kv := func(k, v string) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v), CreateRevision: 5, ModRevision: 20006, Version: 9000}
	}
	r := &pb.WatchResponse{Header: &pb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 20006, RaftTerm: 2}, Events: []*mvccpb.Event{
		{Kv: kv("/v2/bench/k", "x"), PrevKv: kv("/v2/bench/k", "x")},
		{Kv: kv("/v2/bench/.", "set"), PrevKv: kv("/v2/bench/.", "set")},
	}}
	msg, _ := r.Marshal()
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := &pb.WatchResponse{}
			if err := m.Unmarshal(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("codec", func(b *testing.B) {
		b.ReportAllocs()
		data := mem.BufferSlice{mem.SliceBuffer(msg)}
		for b.Loop() {
			m := &pb.WatchResponse{}
			if err := (watchCodec{}).Unmarshal(data, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
