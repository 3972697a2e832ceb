package v2store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdtest"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"google.golang.org/grpc"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestV3Store runs every store test on one embedded etcd (start-up is the
// expensive part). Each subtest works under a v2 prefix of its own, so the
// subtests never see each other's keys; the prefix does not show in v2 paths.
func TestV3Store(t *testing.T) {
	_, cc := etcdtest.Start(t)
	t.Run("golden", func(t *testing.T) { testGolden(t, cc) })
	t.Run("ttl", func(t *testing.T) { testTTL(t, cc) })
	t.Run("in-order", func(t *testing.T) { testInOrder(t, cc) })
	t.Run("prefix", func(t *testing.T) { testPrefix(t, cc) })
	t.Run("parents", func(t *testing.T) { testParents(t, cc) })
	t.Run("read your writes", func(t *testing.T) { testReadYourWrites(t, cc) })
}

func boolp(b bool) *bool { return &b }

func ttlp(s int) *time.Duration { d := time.Duration(s) * time.Second; return &d }

// op is one store call of a golden case. prevIndexOf names an index saved
// by an earlier op (save), for compares against real indexes.
type op struct {
	method      string // GET, PUT, POST, DELETE
	key         string
	get         v2store.GetOptions
	set         v2store.SetOptions
	del         v2store.DeleteOptions
	prevIndexOf string
	save        string // remember the node's modifiedIndex under this name
	// want is the HTTP status the op must answer (checked besides the
	// golden file, so that -update cannot bless a wrong status).
	want int
}

func get(key string, o v2store.GetOptions, want int) op {
	return op{method: "GET", key: key, get: o, want: want}
}

func put(key string, o v2store.SetOptions, want int) op {
	return op{method: "PUT", key: key, set: o, want: want}
}

func del(key string, o v2store.DeleteOptions, want int) op {
	return op{method: "DELETE", key: key, del: o, want: want}
}

func (o op) saving(name string) op { o.save = name; return o }

func (o op) prevIndex(name string) op { o.prevIndexOf = name; return o }

// describe renders the request the way a v2 client would send it.
func (o op) describe() string {
	var q []string
	add := func(k, v string) { q = append(q, k+"="+v) }
	switch o.method {
	case "GET":
		if o.get.Recursive {
			add("recursive", "true")
		}
		if o.get.Sorted {
			add("sorted", "true")
		}
		if o.get.Quorum {
			add("quorum", "true")
		}
	case "PUT", "POST":
		s := o.set
		if s.Dir {
			add("dir", "true")
		} else if s.Value != "" || !s.Refresh {
			add("value", s.Value)
		}
		if s.TTL != nil {
			add("ttl", strconv.Itoa(int(*s.TTL/time.Second)))
		}
		if s.Refresh {
			add("refresh", "true")
		}
		if s.PrevExist != nil {
			add("prevExist", strconv.FormatBool(*s.PrevExist))
		}
		if s.PrevValue != "" {
			add("prevValue", s.PrevValue)
		}
		if s.PrevIndex != 0 {
			add("prevIndex", strconv.FormatUint(s.PrevIndex, 10))
		}
	case "DELETE":
		d := o.del
		if d.Dir {
			add("dir", "true")
		}
		if d.Recursive {
			add("recursive", "true")
		}
		if d.PrevValue != "" {
			add("prevValue", d.PrevValue)
		}
		if d.PrevIndex != 0 {
			add("prevIndex", strconv.FormatUint(d.PrevIndex, 10))
		}
	}
	s := o.method + " " + o.key
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

type goldenCase struct {
	name string
	// note is the golden file's first line: what 3.4 does and where the
	// shim deliberately differs (docs/v2.md "Accepted differences").
	note string
	ops  []op
}

func testGolden(t *testing.T, cc *grpc.ClientConn) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			s := v2store.NewV3(cc, "/golden-"+c.name)
			got := runCase(t, s, c)
			checkGolden(t, c.name, got)
		})
	}
}

// runCase plays a case's ops and renders the responses: status, the
// X-Etcd-Index header and the body, with indexes renumbered by order of
// appearance and expirations replaced (their times are checked here).
func runCase(t *testing.T, s v2store.Store, c goldenCase) string {
	t.Helper()
	ctx := context.Background()
	saved := map[string]uint64{}
	grants := ttlGrants{}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n", c.note)
	for i, o := range c.ops {
		if o.prevIndexOf != "" {
			idx, ok := saved[o.prevIndexOf]
			if !ok {
				t.Fatalf("op %d: no saved index %q", i, o.prevIndexOf)
			}
			o.set.PrevIndex, o.del.PrevIndex = idx, idx
		}
		var (
			ev  *v2store.Event
			m   v2store.Meta
			err error
		)
		start := time.Now()
		switch o.method {
		case "GET":
			ev, m, err = s.Get(ctx, o.key, o.get)
		case "PUT":
			ev, m, err = s.Put(ctx, o.key, o.set)
		case "POST":
			ev, m, err = s.CreateInOrder(ctx, o.key, o.set)
		case "DELETE":
			ev, m, err = s.Delete(ctx, o.key, o.del)
		}
		if err == nil && o.set.TTL != nil && ev != nil && ev.Node != nil {
			grants.add(ev.Node.Key, int64(*o.set.TTL/time.Second), start)
		}
		status, body, index := renderAt(t, ev, m, err, start, grants.normalize)
		if status != o.want {
			t.Errorf("op %d %s: status %d, want %d: %s", i, o.describe(), status, o.want, body)
		}
		if o.save != "" {
			if ev == nil || ev.Node == nil {
				t.Fatalf("op %d %s: nothing to save: %s", i, o.describe(), body)
			}
			saved[o.save] = ev.Node.ModifiedIndex
		}
		fmt.Fprintf(&b, "\n> %s\n< %d X-Etcd-Index: %d\n%s", o.describe(), status, index, body)
	}
	return canonical(b.String())
}

// ttlGrants are the ttls a case granted, by key, and when: a node's ttl
// counts down in whole seconds, so how many have passed since its grant
// depends on the machine's speed (under load, a prevNode showed 39 for a
// grant of 40). normalize writes the granted ttl for one that counted down
// no further than the time since the grant allows, so the golden file
// holds the grant; anything else stays, and differs from the file.
type ttlGrants map[string][]ttlGrant

type ttlGrant struct {
	ttl int64
	at  time.Time
}

func (g ttlGrants) add(key string, ttl int64, at time.Time) {
	g[key] = append(g[key], ttlGrant{ttl: ttl, at: at})
}

func (g ttlGrants) normalize(n *v2store.Node) {
	if n == nil {
		return
	}
	for _, gr := range g[n.Key] {
		passed := int64(math.Ceil(time.Since(gr.at).Seconds()))
		if n.TTL != 0 && n.TTL <= gr.ttl && n.TTL >= gr.ttl-passed {
			n.TTL = gr.ttl
			break
		}
	}
	for _, c := range n.Nodes {
		g.normalize(c)
	}
}

// render answers as the v2 HTTP layer does: 201 for a created node, else
// 200, body encoded by json.Encoder; errors with v2edge.WriteV2Error.
func render(t *testing.T, ev *v2store.Event, m v2store.Meta, err error) (status int, body string, index uint64) {
	t.Helper()
	return renderAt(t, ev, m, err, time.Now(), nil)
}

// renderAt is render for an answer to a request sent at start, with the
// nodes' ttls normalized (after their expirations were checked) when
// normalize is not nil.
func renderAt(t *testing.T, ev *v2store.Event, m v2store.Meta, err error, start time.Time, normalize func(*v2store.Node)) (status int, body string, index uint64) {
	t.Helper()
	if err != nil {
		ve, ok := err.(*v2store.Error)
		if !ok {
			t.Fatalf("not a v2 error: %v", err)
		}
		if ve.Index == 0 {
			t.Errorf("error %d carries no index", ve.Code)
		}
		rec := httptest.NewRecorder()
		v2edge.WriteV2Error(rec, ve)
		idx, _ := strconv.ParseUint(rec.Header().Get("X-Etcd-Index"), 10, 64)
		return rec.Code, rec.Body.String(), idx
	}
	checkExpirations(t, ev.Node, start)
	checkExpirations(t, ev.PrevNode, start)
	if normalize != nil {
		normalize(ev.Node)
		normalize(ev.PrevNode)
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(ev); err != nil {
		t.Fatal(err)
	}
	status = 200
	if ev.IsCreated() {
		status = 201
	}
	if m.EtcdIndex == 0 {
		t.Errorf("%s: no etcd index", ev.Action)
	}
	return status, buf.String(), m.EtcdIndex
}

// checkExpirations: a node has an expiration exactly when it has a ttl,
// and it lies ttl seconds ahead (to within the second the ttl rounds) of
// when the member answered, some time after start (the request was sent)
// and before now: no more than ttl seconds from now, no less than ttl-2
// from start, however long the answer took.
func checkExpirations(t *testing.T, n *v2store.Node, start time.Time) {
	t.Helper()
	if n == nil {
		return
	}
	if (n.Expiration != nil) != (n.TTL != 0) {
		t.Errorf("%s: expiration %v with ttl %d", n.Key, n.Expiration, n.TTL)
	}
	if n.Expiration != nil {
		if left := time.Until(*n.Expiration); left > time.Duration(n.TTL)*time.Second {
			t.Errorf("%s: expires in %v, ttl %d", n.Key, left, n.TTL)
		}
		if left := n.Expiration.Sub(start); left < time.Duration(n.TTL-2)*time.Second {
			t.Errorf("%s: expires %v after the request was sent, ttl %d", n.Key, left, n.TTL)
		}
		if n.Expiration.Location() != time.UTC {
			t.Errorf("%s: expiration %v not in UTC", n.Key, n.Expiration)
		}
	}
	for _, c := range n.Nodes {
		checkExpirations(t, c, start)
	}
}

var (
	indexRe      = regexp.MustCompile(`"(?:modifiedIndex|createdIndex|index)":(\d+)|X-Etcd-Index: (\d+)|prevIndex=(\d+)|/(\d{20})\b|\[(\d+) != (\d+)\]|\[(\d+)/(\d+)\]`)
	expirationRe = regexp.MustCompile(`"expiration":"[^"]*"`)
)

// canonical renumbers indexes (v3 revisions, which depend on everything
// the member did before) by order of appearance: equal indexes stay equal,
// and 20-digit in-order names keep their width.
func canonical(s string) string {
	s = expirationRe.ReplaceAllString(s, `"expiration":"<expiration>"`)
	seen := map[string]int{}
	var out strings.Builder
	last := 0
	for _, m := range indexRe.FindAllStringSubmatchIndex(s, -1) {
		for g := 1; 2*g < len(m); g++ {
			a, z := m[2*g], m[2*g+1]
			if a < 0 {
				continue
			}
			out.WriteString(s[last:a])
			num := s[a:z]
			n, _ := strconv.ParseUint(num, 10, 64)
			if n == 0 {
				out.WriteString(num)
			} else {
				k := strconv.FormatUint(n, 10)
				if _, ok := seen[k]; !ok {
					seen[k] = len(seen) + 1
				}
				if len(num) == 20 {
					fmt.Fprintf(&out, "%020d", seen[k])
				} else {
					out.WriteString(strconv.Itoa(seen[k]))
				}
			}
			last = z
		}
	}
	out.WriteString(s[last:])
	return out.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestCanonical(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"first appearance", `X-Etcd-Index: 40 {"modifiedIndex":40,"createdIndex":38}`, `X-Etcd-Index: 1 {"modifiedIndex":1,"createdIndex":2}`},
		{"zero kept", `{"errorCode":209,"index":0}`, `{"errorCode":209,"index":0}`},
		{"in-order width", `prevIndex=7 "key":"/q/00000000000000000007"`, `prevIndex=1 "key":"/q/00000000000000000001"`},
		{"compare cause", `"cause":"[a != b] [12 != 15]","index":15`, `"cause":"[a != b] [1 != 2]","index":2`},
		{"history cause", `[58/1]`, `[1/2]`},
		{"expiration", `"expiration":"2026-01-02T03:04:05.6Z","ttl":5`, `"expiration":"<expiration>","ttl":5`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := canonical(c.in); got != c.want {
				t.Errorf("canonical(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}
