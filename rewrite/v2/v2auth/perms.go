package v2auth

import (
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/authpb"
)

// rootRoleName is the built-in role of both APIs.
const rootRoleName = "root"

// kvPerms is 3.4's {"read":[…],"write":[…]}.
type kvPerms struct {
	Read  []string `json:"read"`
	Write []string `json:"write"`
}

type permissions struct {
	KV kvPerms `json:"kv"`
}

func (p permissions) isEmpty() bool { return len(p.KV.Read) == 0 && len(p.KV.Write) == 0 }

// role is 3.4's auth.Role.
type role struct {
	Role        string       `json:"role"`
	Permissions permissions  `json:"permissions"`
	Grant       *permissions `json:"grant,omitempty"`
	Revoke      *permissions `json:"revoke,omitempty"`
}

func (r *role) named() string { return r.Role }

func rootRole() role {
	return role{Role: rootRoleName, Permissions: permissions{KV: kvPerms{Read: []string{"/*"}, Write: []string{"/*"}}}}
}

// v3Perm is one v3 key permission in the v2 layout.
type v3Perm struct {
	key, rangeEnd string
}

// toV3 maps a v2 path pattern ("/a" exact, "/a*" prefix) to a v3 key range.
func toV3(prefix, path string) v3Perm {
	if strings.HasSuffix(path, "*") {
		k := prefix + strings.TrimSuffix(path, "*")
		return v3Perm{key: k, rangeEnd: prefixEnd(k)}
	}
	return v3Perm{key: prefix + path}
}

// toV2 maps a v3 permission back to a v2 pattern; ok is false for ranges the
// v2 API cannot express or keys outside the v2 keyspace.
func toV2(prefix string, p *authpb.Permission) (string, bool) {
	k := string(p.Key)
	if !strings.HasPrefix(k, prefix+"/") {
		return "", false
	}
	path := strings.TrimPrefix(k, prefix)
	switch string(p.RangeEnd) {
	case "":
		return path, true
	case prefixEnd(k):
		return path + "*", true
	}
	return "", false
}

func prefixEnd(k string) string {
	b := []byte(k)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// permsFromV3 lists a v3 role's permissions in v2's shape, sorted.
func permsFromV3(prefix string, perms []*authpb.Permission) permissions {
	out := permissions{KV: kvPerms{Read: []string{}, Write: []string{}}}
	for _, p := range perms {
		path, ok := toV2(prefix, p)
		if !ok {
			continue
		}
		if p.PermType == authpb.READ || p.PermType == authpb.READWRITE {
			out.KV.Read = append(out.KV.Read, path)
		}
		if p.PermType == authpb.WRITE || p.PermType == authpb.READWRITE {
			out.KV.Write = append(out.KV.Write, path)
		}
	}
	sort.Strings(out.KV.Read)
	sort.Strings(out.KV.Write)
	return out
}

// grants merges v2 read and write lists into one v3 permission type per path.
func grants(p permissions) map[string]authpb.Permission_Type {
	const read, write = 1, 2
	bits := map[string]int{}
	for _, path := range p.KV.Read {
		bits[path] |= read
	}
	for _, path := range p.KV.Write {
		bits[path] |= write
	}
	types := [...]authpb.Permission_Type{read: authpb.READ, write: authpb.WRITE, read | write: authpb.READWRITE}
	out := make(map[string]authpb.Permission_Type, len(bits))
	for path, b := range bits {
		out[path] = types[b]
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
