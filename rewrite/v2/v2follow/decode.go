package v2follow

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// watchCodec decodes the follower's watch responses with a few allocations
// per response instead of seven per event (the generated decoder allocates
// every event, key-value, key and value on its own): one copy of the
// message, which the events' keys and values point into, and one array
// each of events, key-values and event pointers. Everything else, and any
// response the fast decoder does not fully understand, takes the generated
// code.
type watchCodec struct{ encoding.CodecV2 }

// watchCodecOption makes a watch stream decode with watchCodec.
var watchCodecOption = grpc.ForceCodecV2(watchCodec{encoding.GetCodecV2(proto.Name)})

func (c watchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*pb.WatchResponse)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	b := data.Materialize() // a copy: data's buffers go back to a pool
	if decodeWatchResponse(b, m) {
		return nil
	}
	m.Reset()
	return m.Unmarshal(b)
}

// decodeWatchResponse decodes b into m as the generated Unmarshal would,
// with m's keys and values pointing into b; false (m then in any state)
// for anything it leaves to the generated code: a malformed message, an
// unknown field, a singular message field given twice (which the generated
// code merges).
func decodeWatchResponse(b []byte, m *pb.WatchResponse) bool {
	*m = pb.WatchResponse{}
	// First pass: count the events, so that each array is allocated once.
	n := 0
	f := fields{b: b}
	for num, typ, more := f.next(); more; num, typ, more = f.next() {
		if num == 11 && typ == protowire.BytesType {
			n++
		}
		f.skip(num, typ)
	}
	if !f.ok() {
		return false
	}
	var events []mvccpb.Event
	var kvs []mvccpb.KeyValue
	if n > 0 {
		events = make([]mvccpb.Event, n)
		kvs = make([]mvccpb.KeyValue, 0, 2*n)
		m.Events = make([]*mvccpb.Event, 0, n)
	}
	f = fields{b: b}
	for num, typ, more := f.next(); more; num, typ, more = f.next() {
		switch {
		case typ == protowire.VarintType && num == 2:
			m.WatchId = int64(f.varint())
		case typ == protowire.VarintType && num == 3:
			m.Created = f.varint() != 0
		case typ == protowire.VarintType && num == 4:
			m.Canceled = f.varint() != 0
		case typ == protowire.VarintType && num == 5:
			m.CompactRevision = int64(f.varint())
		case typ == protowire.VarintType && num == 7:
			m.Fragment = f.varint() != 0
		case typ == protowire.BytesType && num == 1 && m.Header == nil:
			m.Header = &pb.ResponseHeader{}
			if !decodeHeader(f.bytes(), m.Header) {
				return false
			}
		case typ == protowire.BytesType && num == 6:
			m.CancelReason = string(f.bytes())
		case typ == protowire.BytesType && num == 11:
			e := &events[len(m.Events)]
			if !decodeEvent(f.bytes(), e, &kvs) {
				return false
			}
			m.Events = append(m.Events, e)
		default:
			return false
		}
	}
	return f.ok()
}

func decodeHeader(b []byte, h *pb.ResponseHeader) bool {
	var v [5]uint64 // by field number; the last of a repeated scalar wins, as in the generated code
	f := fields{b: b}
	for num, typ, more := f.next(); more; num, typ, more = f.next() {
		if typ != protowire.VarintType || num < 1 || num > 4 {
			return false
		}
		v[num] = f.varint()
	}
	h.ClusterId, h.MemberId, h.Revision, h.RaftTerm = v[1], v[2], int64(v[3]), v[4]
	return f.ok()
}

func decodeEvent(b []byte, e *mvccpb.Event, kvs *[]mvccpb.KeyValue) bool {
	f := fields{b: b}
	for num, typ, more := f.next(); more; num, typ, more = f.next() {
		switch {
		case num == 1 && typ == protowire.VarintType:
			e.Type = mvccpb.Event_EventType(int32(f.varint()))
		case (num == 2 || num == 3) && typ == protowire.BytesType:
			dst := &e.Kv
			if num == 3 {
				dst = &e.PrevKv
			}
			if *dst != nil || len(*kvs) == cap(*kvs) {
				return false
			}
			*kvs = append(*kvs, mvccpb.KeyValue{})
			kv := &(*kvs)[len(*kvs)-1]
			if !decodeKV(f.bytes(), kv) {
				return false
			}
			*dst = kv
		default:
			return false
		}
	}
	return f.ok()
}

func decodeKV(b []byte, kv *mvccpb.KeyValue) bool {
	f := fields{b: b}
	for num, typ, more := f.next(); more; num, typ, more = f.next() {
		switch {
		case num == 1 && typ == protowire.BytesType:
			kv.Key = f.bytes()
		case num == 5 && typ == protowire.BytesType:
			kv.Value = f.bytes()
		case num == 2 && typ == protowire.VarintType:
			kv.CreateRevision = int64(f.varint())
		case num == 3 && typ == protowire.VarintType:
			kv.ModRevision = int64(f.varint())
		case num == 4 && typ == protowire.VarintType:
			kv.Version = int64(f.varint())
		case num == 6 && typ == protowire.VarintType:
			kv.Lease = int64(f.varint())
		default:
			return false
		}
	}
	return f.ok()
}

// fields reads a message's fields in order; after a malformed one it reads
// nothing more and ok is false.
type fields struct {
	b   []byte
	bad bool
}

// next reads the next field's number and wire type; false at the end.
func (f *fields) next() (protowire.Number, protowire.Type, bool) {
	if f.bad || len(f.b) == 0 {
		return 0, 0, false
	}
	num, typ, l := protowire.ConsumeTag(f.b)
	if l < 0 {
		f.bad = true
		return 0, 0, false
	}
	f.b = f.b[l:]
	return num, typ, true
}

func (f *fields) varint() uint64 {
	v, l := protowire.ConsumeVarint(f.b)
	f.advance(l)
	return v
}

// bytes is a length-delimited field's value, capped at its length: an
// append to it copies instead of writing over what follows in the message.
func (f *fields) bytes() []byte {
	v, l := protowire.ConsumeBytes(f.b)
	f.advance(l)
	return v[:len(v):len(v)]
}

func (f *fields) skip(num protowire.Number, typ protowire.Type) {
	f.advance(protowire.ConsumeFieldValue(num, typ, f.b))
}

func (f *fields) advance(l int) {
	if l < 0 {
		f.bad, f.b = true, nil
		return
	}
	f.b = f.b[l:]
}

func (f *fields) ok() bool { return !f.bad }
