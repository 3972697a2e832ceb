package v2store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/etcdtest"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// memOf is a member holding the v2 nodes given under prefix, written in
// order from revision 2: "/a=x" is the file /a with value x, "/a/" the
// marker of directory /a.
func memOf(prefix string, nodes ...string) *etcdtest.Mem {
	m := etcdtest.NewMem()
	for _, n := range nodes {
		k, v, _ := strings.Cut(n, "=")
		m.Put(prefix+k, v, 0)
	}
	return m
}

// probeIn runs p's probe reads on m, as a failed write's else branch runs
// them, and decodes them.
func probeIn(t *testing.T, l Layout, m *etcdtest.Mem, p string) probe {
	t.Helper()
	resp, err := etcdrpc.NewKVClient(m).Txn(context.Background(), &pb.TxnRequest{Success: l.probeOps(p)})
	if err != nil {
		t.Fatal(err)
	}
	return l.readProbe(p, resp.Responses, resp.Header.Revision)
}

// wantErr checks a v2 error's code, cause and index.
func wantErr(t *testing.T, err error, code int, cause string, index int64) {
	t.Helper()
	e, ok := err.(*Error)
	switch {
	case !ok:
		t.Fatalf("error %v, want v2 error %d (%s)", err, code, cause)
	case e.Code != code || e.Cause != cause || e.Index != uint64(index):
		t.Fatalf("error %d (%s) at %d, want %d (%s) at %d", e.Code, e.Cause, e.Index, code, cause, index)
	}
}

// TestProbe: what a failed write's else branch reads, decoded, and the v2
// error each write names from it: the first file on the path (104), else
// the first missing component (100), else what p itself is.
func TestProbe(t *testing.T) {
	type want struct {
		file, missing string
		isDir         bool
		target        string // the key of p's file, if any
	}
	for _, c := range []struct {
		name  string
		nodes []string
		p     string
		want  want
	}{
		{"nothing", nil, "/a/b/c", want{missing: "/a"}},
		{"first parent a file", []string{"/a=x"}, "/a/b/c", want{file: "/a"}},
		{"second parent a file", []string{"/a/", "/a/b=x"}, "/a/b/c", want{file: "/a/b"}},
		{"parent implied by a v3 key", []string{"/a/z=x"}, "/a/b/c", want{missing: "/a/b"}},
		{"parent with only its record", []string{"/a/."}, "/a/b", want{}},
		{"p a file", []string{"/a/", "/a/b=x"}, "/a/b", want{target: "/v2/a/b"}},
		{"p a directory", []string{"/a/b/"}, "/a/b", want{isDir: true}},
		{"p a file and a directory", []string{"/a/b=x", "/a/b/c=y"}, "/a/b", want{isDir: true, target: "/v2/a/b"}},
		{"a sibling is no parent", []string{"/a-b/", "/a0=x"}, "/a/b", want{missing: "/a"}},
		{"a file above a missing parent", []string{"/a=x"}, "/a/b/c/d", want{file: "/a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := testLayout("/v2")
			pr := probeIn(t, l, memOf("/v2", c.nodes...), c.p)
			got := want{file: pr.fileAncestor, missing: pr.missingAncestor, isDir: pr.isDir}
			if pr.target != nil {
				got.target = string(pr.target.Key)
			}
			if got != c.want {
				t.Errorf("probe %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestWriteErrors: the v2 error each kind of write names from its probe.
func TestWriteErrors(t *testing.T) {
	const (
		set       = "set"
		create    = "create"
		swap      = "swap" // update, compare-and-swap, compare-and-delete
		updateDir = "updatedir"
		missing   = "missing" // delete and the rest: just the missing node
	)
	for _, c := range []struct {
		name                string
		nodes               []string
		kind, p             string
		prevValue           string
		prevIndex           uint64
		code                int
		cause               string
		scope               Scope
		leadingResponses    int // responses before the probe's (in-order creates scan first)
		onlyLeadingResponse bool
	}{
		{name: "set: a file above", nodes: []string{"/a=x"}, kind: set, p: "/a/b/c", code: EcodeNotDir, cause: "/a"},
		{name: "set: p a directory", nodes: []string{"/a/b/"}, kind: set, p: "/a/b", code: EcodeNotFile, cause: "/a/b"},
		{name: "set: p a directory implied by a key", nodes: []string{"/a/b/c=x"}, kind: set, p: "/a/b", code: EcodeNotFile, cause: "/a/b"},
		{name: "create: p a file", nodes: []string{"/a/", "/a/b=x"}, kind: create, p: "/a/b", code: EcodeNodeExist, cause: "/a/b"},
		{name: "create: p a directory", nodes: []string{"/a/b/"}, kind: create, p: "/a/b", code: EcodeNodeExist, cause: "/a/b"},
		{name: "create: a file above", nodes: []string{"/a/", "/a/b=x"}, kind: create, p: "/a/b/c", code: EcodeNotDir, cause: "/a/b"},
		{name: "swap: nothing there", kind: swap, p: "/a/b", prevValue: "x", code: EcodeKeyNotFound, cause: "/a"},
		{name: "swap: parent there, p not", nodes: []string{"/a/"}, kind: swap, p: "/a/b", prevValue: "x", code: EcodeKeyNotFound, cause: "/a/b"},
		{name: "swap: p a directory", nodes: []string{"/a/b/"}, kind: swap, p: "/a/b", prevValue: "x", code: EcodeNotFile, cause: "/a/b"},
		{name: "swap: a file above", nodes: []string{"/a=x"}, kind: swap, p: "/a/b", prevValue: "x", code: EcodeNotDir, cause: "/a"},
		{name: "swap: value differs", nodes: []string{"/a/b=y"}, kind: swap, p: "/a/b", prevValue: "x", code: EcodeTestFailed, cause: "[x != y]"},
		{name: "swap: index differs", nodes: []string{"/a/b=y"}, kind: swap, p: "/a/b", prevIndex: 9, code: EcodeTestFailed, cause: "[9 != 2]"},
		{name: "swap: both differ", nodes: []string{"/a/b=y"}, kind: swap, p: "/a/b", prevValue: "x", prevIndex: 9, code: EcodeTestFailed, cause: "[x != y] [9 != 2]"},
		{name: "swap: value matches, index differs", nodes: []string{"/a/b=x"}, kind: swap, p: "/a/b", prevValue: "x", prevIndex: 9, code: EcodeTestFailed, cause: "[9 != 2]"},
		{name: "updatedir: p a file", nodes: []string{"/a/b=x"}, kind: updateDir, p: "/a/b", code: EcodeNotDir, cause: "/a/b"},
		{name: "updatedir: nothing there", kind: updateDir, p: "/a/b", code: EcodeKeyNotFound, cause: "/a"},
		{name: "missing: root child", kind: missing, p: "/a", code: EcodeKeyNotFound, cause: "/a"},
		{name: "after a leading scan", nodes: []string{"/q/"}, kind: missing, p: "/q/00000000000000000001", code: EcodeKeyNotFound,
			cause: "/q/00000000000000000001", leadingResponses: 1},
		{name: "responses missing: p itself", nodes: []string{"/a=x"}, kind: missing, p: "/a/b", code: EcodeKeyNotFound, cause: "/a/b",
			onlyLeadingResponse: true},
		// Under a grant of /v2/alice/ the file /alice is above the grant:
		// its check is left out, so the path reads as missing (scope.go).
		{name: "scope: a file above the grant", nodes: []string{"/alice=x"}, kind: swap, p: "/alice/x/y", prevValue: "x",
			code: EcodeKeyNotFound, cause: "/alice", scope: grantScope{"/v2/alice/"}},
		// Under a grant of /v2/alice/b/, /alice cannot be read: it is taken
		// to exist, and the first missing component is /alice/b.
		{name: "scope: an ancestor above the grant exists", kind: swap, p: "/alice/b/c", prevValue: "x",
			code: EcodeKeyNotFound, cause: "/alice/b", scope: grantScope{"/v2/alice/b/"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := testLayout("/v2")
			l.scope = c.scope
			m := memOf("/v2", c.nodes...)
			ops := l.probeOps(c.p)
			switch {
			case c.onlyLeadingResponse:
				ops = ops[:1]
			case c.leadingResponses > 0:
				ops = append([]*pb.RequestOp{opAny(l.Subtree("/"))}, ops...)
			}
			resp, err := etcdrpc.NewKVClient(m).Txn(context.Background(), &pb.TxnRequest{Success: ops})
			if err != nil {
				t.Fatal(err)
			}
			pr := l.readProbe(c.p, resp.Responses, resp.Header.Revision)
			var got *Error
			switch c.kind {
			case set:
				got = pr.setError(c.p)
			case create:
				got = pr.createError(c.p)
			case swap:
				got = pr.compareFailed(c.p, c.prevValue, c.prevIndex)
			case updateDir:
				got = pr.updateDirError(c.p)
			default:
				got = pr.missing(c.p)
			}
			wantErr(t, got, c.code, c.cause, m.Rev())
		})
	}
}

// TestProbePlanUnderScope: the probe leaves out each read the caller may not
// make, and keeps the order readProbe decodes.
func TestProbePlanUnderScope(t *testing.T) {
	for _, c := range []struct {
		name  string
		scope Scope
		p     string
		want  []string // anc:kind key..end
	}{
		{"no scope", nil, "/a/b", []string{
			"0:file /v2/a", "0:dir /v2/a/../v2/a0", "-1:dir /v2/a/b/../v2/a/b0", "-1:file /v2/a/b"}},
		{"grant /alice/*", grantScope{"/v2/alice/"}, "/alice/b/c", []string{
			"0:dir /v2/alice/../v2/alice0", "1:file /v2/alice/b", "1:dir /v2/alice/b/../v2/alice/b0",
			"-1:dir /v2/alice/b/c/../v2/alice/b/c0", "-1:file /v2/alice/b/c"}},
		{"grant below p only", grantScope{"/v2/k/"}, "/k", []string{"-1:dir /v2/k/../v2/k0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := testLayout("/v2")
			l.scope = c.scope
			var got []string
			for _, r := range l.probePlan(c.p) {
				if r.dir {
					got = append(got, fmt.Sprintf("%d:dir %s..%s", r.anc, r.key, r.end))
				} else {
					got = append(got, fmt.Sprintf("%d:file %s", r.anc, r.key))
				}
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("plan\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if ops := l.probeOps(c.p); len(ops) != len(got) {
				t.Errorf("%d probe ops for %d planned reads", len(ops), len(got))
			}
		})
	}
}

// TestMissingPaths: a GET, a refresh and a failed write name the same
// missing component (Get and refresh read it with missingAt, writes with
// their probe).
func TestMissingPaths(t *testing.T) {
	for _, c := range []struct {
		name  string
		nodes []string
		p     string
		code  int
		cause string
	}{
		{"root child", nil, "/a", EcodeKeyNotFound, "/a"},
		{"first component", []string{"/b/"}, "/a/b/c", EcodeKeyNotFound, "/a"},
		{"last component", []string{"/a/b/"}, "/a/b/c", EcodeKeyNotFound, "/a/b/c"},
		{"middle component", []string{"/a/"}, "/a/b/c", EcodeKeyNotFound, "/a/b"},
		{"implied parent", []string{"/a/x=1"}, "/a/b/c", EcodeKeyNotFound, "/a/b"},
		{"a file above", []string{"/a=1"}, "/a/b/c", EcodeNotDir, "/a"},
		{"a file above, deeper", []string{"/a/b=1"}, "/a/b/c/d", EcodeNotDir, "/a/b"},
		{"hidden names are names", []string{"/_a/"}, "/_a/b", EcodeKeyNotFound, "/_a/b"},
		{"a record is no node", []string{"/a/."}, "/a/.x", EcodeKeyNotFound, "/a/.x"},
		{"a prefix sibling is no parent", []string{"/a-b=1", "/a0/"}, "/a/c", EcodeKeyNotFound, "/a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := memOf("/v2", c.nodes...)
			s := NewV3(m, "/v2")
			_, meta, err := s.Get(context.Background(), c.p, GetOptions{})
			wantErr(t, err, c.code, c.cause, m.Rev())
			if meta.EtcdIndex != uint64(m.Rev()) {
				t.Errorf("X-Etcd-Index %d, want %d", meta.EtcdIndex, m.Rev())
			}
			ttl := time.Second
			_, _, err = s.Put(context.Background(), c.p, SetOptions{Refresh: true, TTL: &ttl})
			wantErr(t, err, c.code, c.cause, m.Rev())
			wantErr(t, probeIn(t, s.l, m, c.p).missing(c.p), c.code, c.cause, m.Rev())
		})
	}
}

// TestMissingPathsAgree generates small keyspaces and checks, for every
// path of up to three components that a GET does not find, that the write
// probe names the same error as the GET.
func TestMissingPathsAgree(t *testing.T) {
	names := []string{"a", "b"}
	var paths []string
	var grow func(p string, depth int)
	grow = func(p string, depth int) {
		for _, n := range names {
			q := p + "/" + n
			paths = append(paths, q)
			if depth < 3 {
				grow(q, depth+1)
			}
		}
	}
	grow("", 1)
	r := rand.New(rand.NewPCG(20, 7))
	for i := 0; i < 200; i++ {
		var nodes []string
		for _, p := range paths {
			switch r.IntN(6) {
			case 0:
				nodes = append(nodes, p+"=v")
			case 1:
				nodes = append(nodes, p+"/")
			}
		}
		m := memOf("", nodes...)
		s := NewV3(m, "")
		for _, p := range paths {
			_, _, err := s.Get(context.Background(), p, GetOptions{})
			if err == nil {
				continue
			}
			ge, ok := err.(*Error)
			if !ok {
				t.Fatalf("%v: GET %s: %v", m, p, err)
			}
			pe := probeIn(t, s.l, m, p).missing(p)
			if ge.Code != pe.Code || ge.Cause != pe.Cause {
				t.Fatalf("%v: GET %s names %d %s, the write probe %d %s", m, p, ge.Code, ge.Cause, pe.Code, pe.Cause)
			}
		}
	}
}

// TestDeepProbe: a deep write reads its probe after the failure, in chunks
// a transaction allows, and decodes it as the one-transaction probe.
func TestDeepProbe(t *testing.T) {
	const depth = 60
	p := pathOfDepth(depth)
	anc := Ancestors(p)
	m := memOf("/v2", anc[39]+"/f=1") // the first 40 parents exist, by a key below them
	s := NewV3(m, "/v2")
	before := m.Ranges()
	resps, err := s.probeAt(context.Background(), p, m.Rev())
	if err != nil {
		t.Fatal(err)
	}
	if want := 2*depth + 2; len(resps) != want || m.Ranges()-before != want {
		t.Fatalf("%d responses of %d reads, want %d", len(resps), m.Ranges()-before, want)
	}
	wantErr(t, s.l.readProbe(p, resps, m.Rev()).missing(p), EcodeKeyNotFound, anc[40], m.Rev())
	wantErr(t, probeIn(t, s.l, m, p).missing(p), EcodeKeyNotFound, anc[40], m.Rev())
}

// TestFindBoundary: a deep write finds the deepest existing parent by
// binary search at one revision, with a key below it as its witness.
func TestFindBoundary(t *testing.T) {
	const depth = 60
	anc := Ancestors(pathOfDepth(depth))
	maxReads := int(math.Ceil(math.Log2(depth + 1)))
	for _, c := range []struct {
		name   string
		exist  int // parents that exist (by a file below the deepest)
		marker bool
		scope  Scope
		k      int
	}{
		{name: "none", exist: 0, k: -1},
		{name: "the first", exist: 1, k: 0},
		{name: "half", exist: 30, k: 29},
		{name: "all but the last", exist: depth - 1, k: depth - 2},
		{name: "all", exist: depth, k: depth - 1},
		{name: "by a marker", exist: 17, marker: true, k: 16},
		// /d cannot be read under a grant of /v2/d/d/: taken to exist.
		{name: "above the grant", exist: 0, scope: grantScope{"/v2/d/d/"}, k: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var nodes []string
			var witness string
			if c.exist > 0 {
				witness = anc[c.exist-1] + "/f=1"
				if c.marker {
					witness = anc[c.exist-1] + "/"
				}
				nodes = append(nodes, witness)
				witness = "/v2" + strings.TrimSuffix(witness, "=1")
			}
			m := memOf("/v2", append(nodes, "/other/x=1")...)
			s := NewV3(m, "/v2")
			s.l.scope = c.scope
			b, err := s.findBoundary(context.Background(), anc)
			if err != nil {
				t.Fatal(err)
			}
			if b.k != c.k || string(b.witness) != witness {
				t.Errorf("deepest parent %d (witness %q), want %d (%q)", b.k, b.witness, c.k, witness)
			}
			if b.witness != nil && b.modRev != 2 {
				t.Errorf("witness mod revision %d, want 2", b.modRev)
			}
			if b.revision != m.Rev() {
				t.Errorf("searched at revision %d, want %d", b.revision, m.Rev())
			}
			if n := m.Ranges(); n > maxReads {
				t.Errorf("%d reads for %d parents, a binary search needs at most %d", n, depth, maxReads)
			}
		})
	}
}
