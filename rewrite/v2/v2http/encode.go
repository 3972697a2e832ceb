package v2http

import (
	"encoding/json"
	"strconv"
	"sync"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// appendEvent appends ev as json.Encoder.Encode writes it (HTML-escaped
// strings, omitempty fields, a trailing newline) without reflection; every
// response pays for the encoding. ok is false when a value needs
// encoding/json's error path (a time outside years 0–9999); the caller then
// encodes with encoding/json.
func appendEvent(b []byte, ev *v2store.Event) (_ []byte, ok bool) {
	b = append(b, `{"action":`...)
	b = appendString(b, ev.Action)
	if ev.Node != nil {
		b = append(b, `,"node":`...)
		if b, ok = appendNode(b, ev.Node); !ok {
			return b, false
		}
	}
	if ev.PrevNode != nil {
		b = append(b, `,"prevNode":`...)
		if b, ok = appendNode(b, ev.PrevNode); !ok {
			return b, false
		}
	}
	return append(b, '}', '\n'), true
}

func appendNode(b []byte, n *v2store.Node) (_ []byte, ok bool) {
	if n == nil {
		return append(b, "null"...), true
	}
	b = append(b, '{')
	first := true
	field := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	if n.Key != "" {
		field("key")
		b = appendString(b, n.Key)
	}
	if n.Value != nil {
		field("value")
		b = appendString(b, *n.Value)
	}
	if n.Dir {
		field("dir")
		b = append(b, "true"...)
	}
	if n.Expiration != nil {
		t, err := n.Expiration.MarshalJSON()
		if err != nil {
			return b, false
		}
		field("expiration")
		b = append(b, t...)
	}
	if n.TTL != 0 {
		field("ttl")
		b = strconv.AppendInt(b, n.TTL, 10)
	}
	if len(n.Nodes) > 0 {
		field("nodes")
		b = append(b, '[')
		for i, c := range n.Nodes {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendNode(b, c); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	if n.ModifiedIndex != 0 {
		field("modifiedIndex")
		b = strconv.AppendUint(b, n.ModifiedIndex, 10)
	}
	if n.CreatedIndex != 0 {
		field("createdIndex")
		b = strconv.AppendUint(b, n.CreatedIndex, 10)
	}
	return append(b, '}'), true
}

// appendString writes printable ASCII that JSON and HTML leave alone as it
// is, and hands anything else to encoding/json, whose escaping (HTML
// characters, U+2028/9, invalid UTF-8) it must match.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// bufPool holds response buffers; the HTTP server copies what is written.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
