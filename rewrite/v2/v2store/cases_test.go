package v2store_test

import (
	v2 "github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// goldenCases are played in order, each on an empty keyspace; the
// responses must match testdata/<name>.golden, which were checked against
// etcd 3.4's behaviour (measured on 3.4.23; e2e/v2diff_test.go compares
// the shim with a live 3.4 member).
var goldenCases = []goldenCase{
	{
		name: "set-get-file",
		note: "set answers 201 for a new key and 200 with prevNode for an existing one; get returns the file. Accepted difference 1: set keeps createdIndex (3.4 resets it).",
		ops: []op{
			put("/foo", v2.SetOptions{Value: "bar"}, 201),
			get("/foo", v2.GetOptions{}, 200),
			put("/foo", v2.SetOptions{Value: "bar2"}, 200),
			get("/foo", v2.GetOptions{Quorum: true}, 200),
			put("/empty", v2.SetOptions{Value: ""}, 201), // value "" is kept in the body
			get("/missing", v2.GetOptions{}, 404),
			put("/a/b/c", v2.SetOptions{Value: "deep"}, 201), // parents made with this index
			get("/a", v2.GetOptions{Recursive: true}, 200),
		},
	},
	{
		name: "create",
		note: "prevExist=false creates (201, action create, no prevNode); on an existing key 105 Key already exists, 412, cause the key.",
		ops: []op{
			put("/c", v2.SetOptions{Value: "one", PrevExist: boolp(false)}, 201),
			put("/c", v2.SetOptions{Value: "two", PrevExist: boolp(false)}, 412),
			put("/c", v2.SetOptions{Value: "two", PrevExist: boolp(false), PrevValue: "one"}, 412), // prevValue ignored
			put("/d", v2.SetOptions{Dir: true, PrevExist: boolp(false)}, 201),
			put("/d", v2.SetOptions{Value: "x", PrevExist: boolp(false)}, 412),
			get("/c", v2.GetOptions{}, 200),
		},
	},
	{
		name: "update",
		note: "prevExist=true updates an existing file (200, action update, createdIndex kept); a missing key is 100 with the first missing path component as cause; a dir is 102.",
		ops: []op{
			put("/u", v2.SetOptions{Value: "v1"}, 201),
			put("/u", v2.SetOptions{Value: "v2", PrevExist: boolp(true)}, 200),
			put("/nope", v2.SetOptions{Value: "x", PrevExist: boolp(true)}, 404),
			put("/a/b/c", v2.SetOptions{Value: "x", PrevExist: boolp(true)}, 404),
			put("/dir/x", v2.SetOptions{Value: "x"}, 201),
			put("/dir/y/z", v2.SetOptions{Value: "x", PrevExist: boolp(true)}, 404),
			put("/dir", v2.SetOptions{Value: "x", PrevExist: boolp(true)}, 403),
		},
	},
	{
		name: "compare-and-swap",
		note: "prevValue/prevIndex: 200 compareAndSwap with prevNode; failure 101 Compare failed 412, cause [prevValue != current] and/or [prevIndex != modifiedIndex], value first; missing key 100; dir 102.",
		ops: []op{
			put("/k", v2.SetOptions{Value: "one"}, 201).saving("first"),
			put("/k", v2.SetOptions{Value: "two", PrevValue: "one"}, 200).saving("second"),
			put("/k", v2.SetOptions{Value: "x", PrevValue: "one"}, 412),
			put("/k", v2.SetOptions{Value: "x"}, 412).prevIndex("first"),
			put("/k", v2.SetOptions{Value: "x", PrevValue: "one"}, 412).prevIndex("first"),
			put("/k", v2.SetOptions{Value: "x", PrevValue: "two"}, 412).prevIndex("first"),
			put("/k", v2.SetOptions{Value: "three", PrevValue: "two"}, 200).prevIndex("second"),
			put("/k", v2.SetOptions{Value: "four", PrevExist: boolp(true), PrevValue: "three"}, 200),
			put("/gone", v2.SetOptions{Value: "x", PrevValue: "one"}, 404),
			put("/d/f", v2.SetOptions{Value: "x"}, 201),
			put("/d", v2.SetOptions{Value: "x", PrevValue: "one"}, 403),
			get("/k", v2.GetOptions{}, 200),
		},
	},
	{
		name: "dirs",
		note: "dir=true makes an empty dir (201 set, dir:true); listing shows direct children (child dirs without nodes), recursive nests, sorted by key, hidden _ names left out; set on a dir is 102; dir=true on a file replaces it (200, prevNode the file).",
		ops: []op{
			put("/d", v2.SetOptions{Dir: true}, 201),
			get("/d", v2.GetOptions{}, 200),
			put("/d/b", v2.SetOptions{Value: "B"}, 201),
			put("/d/a", v2.SetOptions{Value: "A"}, 201),
			put("/d/_hidden", v2.SetOptions{Value: "H"}, 201),
			put("/d/sub/x", v2.SetOptions{Value: "X"}, 201),
			put("/d/sub/_h/y", v2.SetOptions{Value: "Y"}, 201),
			put("/d/c", v2.SetOptions{Dir: true}, 201),
			get("/d", v2.GetOptions{Sorted: true}, 200),
			get("/d", v2.GetOptions{Recursive: true, Sorted: true}, 200),
			get("/d/_hidden", v2.GetOptions{}, 200), // hidden keys stay readable
			get("/", v2.GetOptions{}, 200),          // the root: no key, no indexes
			put("/d", v2.SetOptions{Value: "x"}, 403),
			put("/d", v2.SetOptions{Dir: true}, 403),
			put("/f", v2.SetOptions{Value: "file"}, 201),
			put("/f", v2.SetOptions{Dir: true}, 200),
			get("/f", v2.GetOptions{}, 200),
		},
	},
	{
		name: "prefix-siblings",
		note: "listing /ab never returns /abc/... or /ab-c (the range ends at /ab/, unlike 3.4's v2v3 emulation).",
		ops: []op{
			put("/ab/x", v2.SetOptions{Value: "1"}, 201),
			put("/abc/y", v2.SetOptions{Value: "2"}, 201),
			put("/ab-c", v2.SetOptions{Value: "3"}, 201),
			put("/a", v2.SetOptions{Value: "4"}, 201),
			get("/ab", v2.GetOptions{Recursive: true}, 200),
			get("/ab", v2.GetOptions{}, 200),
			get("/a", v2.GetOptions{}, 200),
			del("/ab", v2.DeleteOptions{Recursive: true}, 200),
			get("/abc/y", v2.GetOptions{}, 200),
			get("/ab-c", v2.GetOptions{}, 200),
		},
	},
	{
		name: "file-under-file",
		note: "a file on the path is 104 Not a directory, 400, cause the file's key: for set, create, update and get.",
		ops: []op{
			put("/f", v2.SetOptions{Value: "x"}, 201),
			put("/f/g", v2.SetOptions{Value: "y"}, 400),
			put("/f/g/h", v2.SetOptions{Value: "y", PrevExist: boolp(false)}, 400),
			put("/f/g", v2.SetOptions{Dir: true}, 400),
			get("/f/g", v2.GetOptions{}, 400),
			put("/root", v2.SetOptions{Value: "x"}, 201),
			put("/", v2.SetOptions{Value: "x"}, 400), // 107 Root is read only
		},
	},
	{
		name: "delete",
		note: "delete: a file (200, node key+indexes, prevNode); a dir without dir/recursive 102 403; dir=true on a non-empty dir 108 403, on an empty one deletes it; recursive removes the subtree; dir=true on a file deletes it; missing 100; root 107.",
		ops: []op{
			put("/f", v2.SetOptions{Value: "x"}, 201),
			del("/f", v2.DeleteOptions{}, 200),
			del("/f", v2.DeleteOptions{}, 404),
			put("/d/e/f", v2.SetOptions{Value: "x"}, 201),
			del("/d", v2.DeleteOptions{}, 403),
			del("/d", v2.DeleteOptions{Dir: true}, 403),
			put("/d/empty", v2.SetOptions{Dir: true}, 201),
			del("/d/empty", v2.DeleteOptions{Dir: true}, 200),
			del("/d", v2.DeleteOptions{Recursive: true}, 200),
			get("/d", v2.GetOptions{}, 404),
			get("/d/e/f", v2.GetOptions{}, 404),
			put("/g", v2.SetOptions{Value: "x"}, 201),
			del("/g", v2.DeleteOptions{Dir: true}, 200),
			put("/kept/x", v2.SetOptions{Value: "x"}, 201),
			del("/kept/x", v2.DeleteOptions{}, 200),
			get("/kept", v2.GetOptions{}, 200), // a v2-made dir outlives its last child
			del("/", v2.DeleteOptions{Recursive: true}, 400),
		},
	},
	{
		name: "compare-and-delete",
		note: "DELETE with prevValue/prevIndex: 200 compareAndDelete (node key+indexes, prevNode); mismatch 101 412 with 3.4's cause; missing 100; dir 102.",
		ops: []op{
			put("/k", v2.SetOptions{Value: "one"}, 201).saving("first"),
			put("/k", v2.SetOptions{Value: "two"}, 200),
			del("/k", v2.DeleteOptions{PrevValue: "one"}, 412),
			del("/k", v2.DeleteOptions{}, 412).prevIndex("first"),
			del("/k", v2.DeleteOptions{PrevValue: "one"}, 412).prevIndex("first"),
			del("/k", v2.DeleteOptions{PrevValue: "two", Recursive: true}, 200),
			del("/k", v2.DeleteOptions{PrevValue: "two"}, 404),
			put("/d/x", v2.SetOptions{Value: "x"}, 201).saving("x"),
			del("/d", v2.DeleteOptions{PrevValue: "x"}, 403),
			del("/d/x", v2.DeleteOptions{}, 200).prevIndex("x"),
		},
	},
	{
		name: "ttl",
		note: "ttl: node carries expiration and ttl (seconds left rounded up); get shows it; set without ttl makes the key permanent; a TTL'd dir.",
		ops: []op{
			put("/t", v2.SetOptions{Value: "v", TTL: ttlp(30)}, 201),
			get("/t", v2.GetOptions{}, 200),
			put("/t", v2.SetOptions{Value: "w"}, 200),
			get("/t", v2.GetOptions{}, 200),
			put("/td", v2.SetOptions{Dir: true, TTL: ttlp(40)}, 201),
			put("/td/x", v2.SetOptions{Value: "x", TTL: ttlp(20)}, 201),
			get("/td", v2.GetOptions{}, 200),
			put("/td", v2.SetOptions{Dir: true, TTL: ttlp(50), PrevExist: boolp(true)}, 200), // updatedir
			put("/u", v2.SetOptions{Value: "u", TTL: ttlp(30)}, 201),
			put("/u", v2.SetOptions{Value: "u2", PrevExist: boolp(true)}, 200), // update clears the ttl
			get("/u", v2.GetOptions{}, 200),
		},
	},
	{
		name: "in-order",
		note: "POST creates <dir>/<20-digit N>, N = the new key's createdIndex (no concurrent writers here), 201 create; dir made with it; sorted listing is FIFO; POST under a file is 104.",
		ops: []op{
			{method: "POST", key: "/q", set: v2.SetOptions{Value: "first"}, want: 201},
			{method: "POST", key: "/q", set: v2.SetOptions{Value: "second"}, want: 201},
			put("/q/other", v2.SetOptions{Value: "x"}, 201),
			{method: "POST", key: "/q", set: v2.SetOptions{Dir: true}, want: 201},
			get("/q", v2.GetOptions{Sorted: true}, 200),
			put("/file", v2.SetOptions{Value: "x"}, 201),
			{method: "POST", key: "/file", set: v2.SetOptions{Value: "x"}, want: 400},
		},
	},
}
