package v2http

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

func TestAppendEventEqualsEncodingJSON(t *testing.T) {
	s := func(v string) *string { return &v }
	exp := time.Date(2026, 11, 24, 6, 20, 38, 123456789, time.UTC)
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []*v2store.Event{
		{Action: "get"},
		{Action: "get", Node: &v2store.Node{}},
		{Action: "set", Node: &v2store.Node{Key: "/a", Value: s(""), ModifiedIndex: 1, CreatedIndex: 1}},
		{Action: "compareAndSwap", Node: &v2store.Node{Key: "/a <b> & \"c\" \\ d", Value: s("x\n\ty\u2028z\u00e9\xff\x7f"), TTL: 5, Expiration: &exp},
			PrevNode: &v2store.Node{Key: "/a", Value: s("v"), ModifiedIndex: 1 << 62, CreatedIndex: 3}},
		{Action: "get", Node: &v2store.Node{Key: "/d", Dir: true, Nodes: []*v2store.Node{
			{Key: "/d/a", Value: s("1")}, nil, {Key: "/d/e", Dir: true, TTL: -1, Nodes: []*v2store.Node{{Key: "/d/e/f", Value: s("2")}}},
		}}},
		{Action: "get", Node: &v2store.Node{Key: "/d", Dir: true, Nodes: []*v2store.Node{}}},
		{Action: "expire", Node: &v2store.Node{Key: "/x", Expiration: &far}},
	}
	for _, ev := range events {
		var want bytes.Buffer
		wantErr := json.NewEncoder(&want).Encode(ev)
		got, ok := appendEvent(nil, ev)
		if wantErr != nil {
			if ok {
				t.Errorf("%+v: encoding/json fails (%v), appendEvent did not", ev, wantErr)
			}
			continue
		}
		if !ok || !bytes.Equal(got, want.Bytes()) {
			t.Errorf("appendEvent = %s (ok %v)\nwant          %s", got, ok, want.Bytes())
		}
	}
}

func FuzzAppendEvent(f *testing.F) {
	f.Add("set", "/a", "v", "/a/b", uint64(7), int64(3), true)
	f.Add("get", "/<&>", "\u2028\xff\"\\", "", uint64(0), int64(-1), false)
	f.Fuzz(func(t *testing.T, action, key, value, child string, idx uint64, ttl int64, dir bool) {
		ev := &v2store.Event{Action: action, Node: &v2store.Node{Key: key, Value: &value, Dir: dir, TTL: ttl, ModifiedIndex: idx,
			Nodes: []*v2store.Node{{Key: child, CreatedIndex: idx}}}, PrevNode: &v2store.Node{Key: child}}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(ev); err != nil {
			t.Skip()
		}
		if got, ok := appendEvent(nil, ev); !ok || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("appendEvent = %s (ok %v)\nwant          %s", got, ok, want.Bytes())
		}
	})
}
