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
	for rest := b; len(rest) > 0; {
		num, typ, l := protowire.ConsumeTag(rest)
		if l < 0 {
			return false
		}
		if num == 11 && typ == protowire.BytesType {
			n++
		}
		rest = rest[l:]
		if l = protowire.ConsumeFieldValue(num, typ, rest); l < 0 {
			return false
		}
		rest = rest[l:]
	}
	var events []mvccpb.Event
	var kvs []mvccpb.KeyValue
	if n > 0 {
		events = make([]mvccpb.Event, n)
		kvs = make([]mvccpb.KeyValue, 0, 2*n)
		m.Events = make([]*mvccpb.Event, 0, n)
	}
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return false
		}
		b = b[l:]
		switch {
		case (num >= 2 && num <= 5 || num == 7) && typ == protowire.VarintType:
			v, l := protowire.ConsumeVarint(b)
			if l < 0 {
				return false
			}
			b = b[l:]
			switch num {
			case 2:
				m.WatchId = int64(v)
			case 3:
				m.Created = v != 0
			case 4:
				m.Canceled = v != 0
			case 5:
				m.CompactRevision = int64(v)
			case 7:
				m.Fragment = v != 0
			}
		case typ == protowire.BytesType && (num == 1 || num == 6 || num == 11):
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return false
			}
			b = b[l:]
			switch num {
			case 1:
				if m.Header != nil {
					return false
				}
				m.Header = &pb.ResponseHeader{}
				if !decodeHeader(v, m.Header) {
					return false
				}
			case 6:
				m.CancelReason = string(v)
			case 11:
				e := &events[len(m.Events)]
				if !decodeEvent(v, e, &kvs) {
					return false
				}
				m.Events = append(m.Events, e)
			}
		default:
			return false
		}
	}
	return true
}

func decodeHeader(b []byte, h *pb.ResponseHeader) bool {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 || typ != protowire.VarintType || num < 1 || num > 4 {
			return false
		}
		b = b[l:]
		v, l := protowire.ConsumeVarint(b)
		if l < 0 {
			return false
		}
		b = b[l:]
		switch num {
		case 1:
			h.ClusterId = v
		case 2:
			h.MemberId = v
		case 3:
			h.Revision = int64(v)
		case 4:
			h.RaftTerm = v
		}
	}
	return true
}

func decodeEvent(b []byte, e *mvccpb.Event, kvs *[]mvccpb.KeyValue) bool {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return false
		}
		b = b[l:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, l := protowire.ConsumeVarint(b)
			if l < 0 {
				return false
			}
			b = b[l:]
			e.Type = mvccpb.Event_EventType(int32(v))
		case (num == 2 || num == 3) && typ == protowire.BytesType:
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return false
			}
			b = b[l:]
			dst := &e.Kv
			if num == 3 {
				dst = &e.PrevKv
			}
			if *dst != nil || len(*kvs) == cap(*kvs) {
				return false
			}
			*kvs = append(*kvs, mvccpb.KeyValue{})
			kv := &(*kvs)[len(*kvs)-1]
			if !decodeKV(v, kv) {
				return false
			}
			*dst = kv
		default:
			return false
		}
	}
	return true
}

func decodeKV(b []byte, kv *mvccpb.KeyValue) bool {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return false
		}
		b = b[l:]
		switch {
		case (num == 1 || num == 5) && typ == protowire.BytesType:
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return false
			}
			b = b[l:]
			// Capped at its length: an append copies instead of
			// writing over what follows in the message.
			v = v[:len(v):len(v)]
			if num == 1 {
				kv.Key = v
			} else {
				kv.Value = v
			}
		case num >= 2 && num <= 6 && num != 5 && typ == protowire.VarintType:
			v, l := protowire.ConsumeVarint(b)
			if l < 0 {
				return false
			}
			b = b[l:]
			switch num {
			case 2:
				kv.CreateRevision = int64(v)
			case 3:
				kv.ModRevision = int64(v)
			case 4:
				kv.Version = int64(v)
			case 6:
				kv.Lease = int64(v)
			}
		default:
			return false
		}
	}
	return true
}
