package v2auth

import (
	"bytes"
	"context"
	"sort"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
)

// Scope is a user's v3 key permissions, as the member holds them: the union
// of its roles' ranges, for reading and for writing. The store asks it which
// of the checks a v2 operation makes fall inside the grant (v2store.Scope);
// the member still checks everything the store sends.
type Scope struct {
	read, write []span // disjoint, ascending
}

var _ v2store.Scope = (*Scope)(nil)

// span is [key, end); a nil end is unbounded.
type span struct{ key, end []byte }

// CanRead implements v2store.Scope.
func (s *Scope) CanRead(key, end []byte) bool { return covered(s.read, key, end) }

// CanWrite implements v2store.Scope.
func (s *Scope) CanWrite(key []byte) bool { return covered(s.write, key, nil) }

// covered reports whether one span holds [key, end) (end nil: the key).
func covered(spans []span, key, end []byte) bool {
	if end == nil {
		end = append(append([]byte(nil), key...), 0)
	}
	i := sort.Search(len(spans), func(i int) bool { return bytes.Compare(spans[i].key, key) > 0 }) - 1
	if i < 0 {
		return false
	}
	sp := spans[i]
	return sp.end == nil || bytes.Compare(end, sp.end) <= 0
}

// spanOf is a v3 permission's range as etcd reads it: no range end is the
// key alone, "\x00" everything from the key on.
func spanOf(p *authpb.Permission) span {
	switch {
	case len(p.RangeEnd) == 0:
		return span{key: p.Key, end: append(append([]byte(nil), p.Key...), 0)}
	case len(p.RangeEnd) == 1 && p.RangeEnd[0] == 0:
		return span{key: p.Key}
	}
	return span{key: p.Key, end: p.RangeEnd}
}

// merge sorts spans and joins those that overlap or touch.
func merge(spans []span) []span {
	sort.Slice(spans, func(i, j int) bool { return bytes.Compare(spans[i].key, spans[j].key) < 0 })
	var out []span
	for _, sp := range spans {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.end == nil || bytes.Compare(sp.key, last.end) <= 0 {
				if last.end != nil && (sp.end == nil || bytes.Compare(sp.end, last.end) > 0) {
					last.end = sp.end
				}
				continue
			}
		}
		out = append(out, sp)
	}
	return out
}

// newScope is the union of perms; nil for a root user (no limit).
func newScope(perms []*authpb.Permission) *Scope {
	var r, w []span
	for _, p := range perms {
		sp := spanOf(p)
		if p.PermType == authpb.READ || p.PermType == authpb.READWRITE {
			r = append(r, sp)
		}
		if p.PermType == authpb.WRITE || p.PermType == authpb.READWRITE {
			w = append(w, sp)
		}
	}
	return &Scope{read: merge(r), write: merge(w)}
}

// fetchScope reads user's permissions with the user's own token (ctx): etcd
// lets a user read itself and the roles it has. A user with the root role
// has no limit (nil). A member that refuses even that gives no scope either:
// the store then asks for everything and the member refuses what it must.
//
// root reports the root role, which the v2 auth API requires of its callers.
func fetchScope(ctx context.Context, ac pb.AuthClient, user string) (sc *Scope, root bool, err error) {
	u, err := ac.UserGet(ctx, &pb.AuthUserGetRequest{Name: user})
	if refusedAsUser(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var perms []*authpb.Permission
	for _, role := range u.Roles {
		if role == rootRoleName {
			return nil, true, nil
		}
		r, err := ac.RoleGet(ctx, &pb.AuthRoleGetRequest{Role: role})
		if refusedAsUser(err) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		perms = append(perms, r.Perm...)
	}
	return newScope(perms), false, nil
}

// refusedAsUser: the member does not let this user read itself (a token
// it no longer accepts is another matter: the caller renews it).
func refusedAsUser(err error) bool {
	return etcderr.Code(err) == codes.PermissionDenied && !etcderr.InvalidToken(err)
}
