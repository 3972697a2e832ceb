package v2store

import (
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Layout is the v2→v3 key layout, exported for tools that write or read the
// v2 keyspace without going through the Store (etcdshim v2 import and
// verify). It is the same layout V3Store uses, so data written with it reads
// back through the shim exactly as if v2 clients had written it.
type Layout struct{ l layout }

// NewLayout returns the layout under prefix ("" or "/something").
func NewLayout(prefix string) Layout { return Layout{l: layout{prefix: prefix}} }

// Prefix is the v3 prefix of the v2 keyspace.
func (x Layout) Prefix() string { return x.l.prefix }

// Key is the v3 key of the v2 file p.
func (x Layout) Key(p string) []byte { return x.l.key(p) }

// Marker is the v3 key that makes p a directory (p + "/").
func (x Layout) Marker(p string) []byte { return x.l.marker(p) }

// Subtree is the v3 range holding directory p's marker and everything below it.
func (x Layout) Subtree(p string) (start, end []byte) { return x.l.subtree(p) }

// Path turns a v3 key of the layout back into a v2 path; dir reports a
// directory marker. ok is false for keys outside the prefix or that no v2
// client could name (no leading slash, empty components).
func (x Layout) Path(k []byte) (p string, dir, ok bool) {
	s := string(k)
	if !strings.HasPrefix(s, x.l.prefix+"/") {
		return "", false, false
	}
	p = x.l.v2Path(k)
	if p == "/" {
		return "/", true, true
	}
	if strings.HasSuffix(p, "/") {
		p, dir = strings.TrimSuffix(p, "/"), true
	}
	if strings.Contains(p, "//") || strings.HasSuffix(p, "/") || IsRecord(k) {
		return "", false, false
	}
	return p, dir, true
}

// NotFile holds when no file p exists.
func (x Layout) NotFile(p string) *pb.Compare { return x.l.notFile(p) }

// NotDir holds when nothing exists below p (no marker, no child).
func (x Layout) NotDir(p string) *pb.Compare { return x.l.notDir(p) }

// NoFileAbove holds when none of p's parent directories is a file.
func (x Layout) NoFileAbove(p string) []*pb.Compare { return x.l.noFileAbove(p) }

// MarkerOps create the markers of p's parent directories, each only if
// absent, as every v2 write does. Two sets of them must not share one
// transaction (etcd refuses a key put twice in a transaction).
func (x Layout) MarkerOps(p string) []*pb.RequestOp { return x.l.markerOps(p) }

// ActionOp records a v2 action on p for watchers, in p's directory record
// (see the record in scope.go).
func (x Layout) ActionOp(p, action string) *pb.RequestOp { return x.l.actionOp(p, action) }

// Record is the v3 key of directory dir's record (scope.go).
func (x Layout) Record(dir string) []byte { return x.l.record(dir) }

// IsRecord reports whether a v3 key of the layout is a directory record,
// which holds no v2 node.
func (x Layout) IsRecord(k []byte) bool { return IsRecord(k) }

// Ancestors lists p's parent directories below the root, top down:
// "/a/b/c" → "/a", "/a/b".
func Ancestors(p string) []string { return ancestors(p) }
