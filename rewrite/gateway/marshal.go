package gateway

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// compactJSON is protojson with proto field names, compacted so that the
// output is byte-stable (protojson randomly adds spaces to stop clients
// relying on its formatting; 3.4-era clients compare and grep bodies).
type compactJSON struct {
	runtime.JSONPb
	// legacy writes a stream's error as grpc-gateway v1 (etcd 3.4) did.
	legacy bool
}

func newMarshaler() *compactJSON {
	return &compactJSON{JSONPb: runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}}
}

// newLegacyMarshaler is the legacy prefixes' marshaler.
func newLegacyMarshaler() *compactJSON {
	m := newMarshaler()
	m.legacy = true
	return m
}

func (m *compactJSON) Marshal(v any) ([]byte, error) {
	// The two hottest answers are written directly; protojson walks them
	// by reflection and was a tenth of a range's CPU. etcd's handlers pass
	// its (gogo) messages wrapped as protobuf v2 messages.
	var msg any = v
	if m2, ok := v.(protoadapt.MessageV2); ok {
		msg = protoadapt.MessageV1Of(m2)
	}
	switch r := msg.(type) {
	case map[string]proto.Message:
		if st, ok := r["error"].(*spb.Status); ok && m.legacy && len(r) == 1 {
			return legacyStreamError(st)
		}
	case *pb.RangeResponse:
		return appendRange(make([]byte, 0, rangeSize(r)), r), nil
	case *pb.PutResponse:
		return appendPut(make([]byte, 0, 160+kvSize(r.PrevKv)), r), nil
	}
	b, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	return compact(b), nil
}

// legacyStreamError is the line that ends a stream on an error in 3.4:
// {"error":{"grpc_code":14,"http_code":503,"message":"…","http_status":"Service Unavailable"}}
// (grpc-gateway v2 writes {"error":{"code":14,"message":"…"}}).
func legacyStreamError(st *spb.Status) ([]byte, error) {
	code := legacyStatus(codes.Code(st.GetCode()))
	return json.Marshal(map[string]streamError{"error": {
		GRPCCode:   st.GetCode(),
		HTTPCode:   int32(code),
		Message:    st.GetMessage(),
		HTTPStatus: http.StatusText(code),
	}})
}

// streamError is grpc-gateway v1's StreamError, fields in its proto order.
type streamError struct {
	GRPCCode   int32  `json:"grpc_code,omitempty"`
	HTTPCode   int32  `json:"http_code,omitempty"`
	Message    string `json:"message,omitempty"`
	HTTPStatus string `json:"http_status,omitempty"`
}

// compact removes the whitespace outside strings in place. It equals
// json.Compact on valid JSON, which protojson always writes, without a
// scanner or a second buffer.
func compact(b []byte) []byte {
	out := b[:0]
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
			continue
		}
		out = append(out, c)
	}
	return out
}

func (m *compactJSON) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

// The direct encoders write what protojson (proto names, zero values
// omitted, 64-bit integers as strings, bytes as padded base64, fields in
// declaration order) writes after compaction; TestDirectEqualsProtojson
// holds them to it.

func appendRange(b []byte, r *pb.RangeResponse) []byte {
	f := fields{b: append(b, '{')}
	if r.Header != nil {
		f.name("header")
		f.b = appendHeader(f.b, r.Header)
	}
	if len(r.Kvs) > 0 {
		f.name("kvs")
		f.b = append(f.b, '[')
		for i, kv := range r.Kvs {
			if i > 0 {
				f.b = append(f.b, ',')
			}
			f.b = appendKV(f.b, kv)
		}
		f.b = append(f.b, ']')
	}
	if r.More {
		f.name("more")
		f.b = append(f.b, "true"...)
	}
	f.int("count", r.Count)
	return append(f.b, '}')
}

func appendPut(b []byte, r *pb.PutResponse) []byte {
	f := fields{b: append(b, '{')}
	if r.Header != nil {
		f.name("header")
		f.b = appendHeader(f.b, r.Header)
	}
	if r.PrevKv != nil {
		f.name("prev_kv")
		f.b = appendKV(f.b, r.PrevKv)
	}
	return append(f.b, '}')
}

func appendHeader(b []byte, h *pb.ResponseHeader) []byte {
	f := fields{b: append(b, '{')}
	f.uint("cluster_id", h.ClusterId)
	f.uint("member_id", h.MemberId)
	f.int("revision", h.Revision)
	f.uint("raft_term", h.RaftTerm)
	return append(f.b, '}')
}

func appendKV(b []byte, kv *mvccpb.KeyValue) []byte {
	f := fields{b: append(b, '{')}
	if kv == nil {
		return append(f.b, '}')
	}
	f.bytes("key", kv.Key)
	f.int("create_revision", kv.CreateRevision)
	f.int("mod_revision", kv.ModRevision)
	f.int("version", kv.Version)
	f.bytes("value", kv.Value)
	f.int("lease", kv.Lease)
	return append(f.b, '}')
}

// fields writes an object's members with the commas between them.
type fields struct {
	b    []byte
	more bool
}

func (f *fields) name(n string) {
	if f.more {
		f.b = append(f.b, ',')
	}
	f.more = true
	f.b = append(f.b, '"')
	f.b = append(f.b, n...)
	f.b = append(f.b, '"', ':')
}

func (f *fields) int(n string, v int64) {
	if v != 0 {
		f.name(n)
		f.b = append(f.b, '"')
		f.b = strconv.AppendInt(f.b, v, 10)
		f.b = append(f.b, '"')
	}
}

func (f *fields) uint(n string, v uint64) {
	if v != 0 {
		f.name(n)
		f.b = append(f.b, '"')
		f.b = strconv.AppendUint(f.b, v, 10)
		f.b = append(f.b, '"')
	}
}

func (f *fields) bytes(n string, v []byte) {
	if len(v) > 0 {
		f.name(n)
		f.b = append(f.b, '"')
		f.b = base64.StdEncoding.AppendEncode(f.b, v)
		f.b = append(f.b, '"')
	}
}

// rangeSize is about the encoded size, so the buffer is allocated once.
func rangeSize(r *pb.RangeResponse) int {
	n := 160
	for _, kv := range r.Kvs {
		n += kvSize(kv)
	}
	return n
}

func kvSize(kv *mvccpb.KeyValue) int {
	if kv == nil {
		return 0
	}
	return 160 + (len(kv.Key)+len(kv.Value))*4/3
}
