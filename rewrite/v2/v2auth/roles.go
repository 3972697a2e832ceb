package v2auth

import (
	"context"
	"net/http"
	"sort"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func (h *Handler) serveRoles(w http.ResponseWriter, r *http.Request) error {
	if !allow(w, r, "GET") {
		return nil
	}
	var out struct {
		Roles []role `json:"roles"`
	}
	err := h.call(r, func(ctx context.Context, ac pb.AuthClient) error {
		rl, err := ac.RoleList(ctx, &pb.AuthRoleListRequest{})
		if err != nil {
			return err
		}
		setClusterID(w, rl.Header)
		names := append([]string(nil), rl.Roles...)
		if !contains(names, rootRoleName) {
			names = append(names, rootRoleName) // 3.4 always lists the built-in root
		}
		sort.Strings(names)
		out.Roles = nil
		for _, n := range names {
			ro, err := h.getRole(ctx, ac, n)
			if err != nil {
				return err
			}
			out.Roles = append(out.Roles, ro)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) serveRole(w http.ResponseWriter, r *http.Request, name string) error {
	if !allow(w, r, "GET", "PUT", "DELETE") {
		return nil
	}
	switch r.Method {
	case http.MethodGet:
		var out role
		err := h.call(r, func(ctx context.Context, ac pb.AuthClient) (err error) {
			out, err = h.getRole(ctx, ac, name)
			return err
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	case http.MethodDelete:
		if name == rootRoleName {
			return authErr(http.StatusForbidden, "Cannot modify role %s: is root role.", name)
		}
		err := h.call(r, func(ctx context.Context, ac pb.AuthClient) error {
			_, err := ac.RoleDelete(ctx, &pb.AuthRoleDeleteRequest{Role: name})
			if is(err, rpctypes.ErrGRPCRoleNotFound) {
				return authErr(http.StatusNotFound, "Role %s does not exist.", name)
			}
			return err
		})
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	var in role
	if err := h.decode(r, &in); err != nil {
		return err
	}
	if in.Role != name {
		return httpErr(http.StatusBadRequest, "Role JSON name does not match the name in the URL")
	}
	if name == rootRoleName {
		return authErr(http.StatusForbidden, "Cannot modify role %s: is root role.", name)
	}
	update := (in.Grant != nil && !in.Grant.isEmpty()) || (in.Revoke != nil && !in.Revoke.isEmpty())
	if update && !in.Permissions.isEmpty() {
		return httpErr(http.StatusBadRequest, "Role JSON contains both permissions and grant/revoke")
	}
	code := http.StatusOK
	var out role
	err := h.call(r, func(ctx context.Context, ac pb.AuthClient) error {
		if !update {
			if _, err := ac.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: name}); err != nil {
				if is(err, rpctypes.ErrGRPCRoleAlreadyExist) {
					return authErr(http.StatusConflict, "Role %s already exists.", name)
				}
				return err
			}
			for path, t := range grants(in.Permissions) {
				if err := h.grantPerm(ctx, ac, name, path, t); err != nil {
					return err
				}
			}
			code, out = http.StatusCreated, role{Role: name, Permissions: in.Permissions}
			return nil
		}
		cur, err := h.getRole(ctx, ac, name)
		if err != nil {
			if ae, ok := err.(*authError); ok && ae.code == http.StatusNotFound {
				return authErr(http.StatusNotFound, "Role %s doesn't exist.", name)
			}
			return err
		}
		before := grants(cur.Permissions)
		next := grants(mergePerms(cur.Permissions, in.Grant, in.Revoke))
		for path := range before {
			if _, keep := next[path]; keep && next[path] == before[path] {
				continue
			}
			p := toV3(h.opts.V2Prefix, path)
			if _, err := ac.RoleRevokePermission(ctx, &pb.AuthRoleRevokePermissionRequest{Role: name, Key: []byte(p.key), RangeEnd: []byte(p.rangeEnd)}); err != nil {
				return err
			}
		}
		for path, t := range next {
			if bt, had := before[path]; had && bt == t {
				continue
			}
			if err := h.grantPerm(ctx, ac, name, path, t); err != nil {
				return err
			}
		}
		out, err = h.getRole(ctx, ac, name)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, code, out)
	return nil
}

func (h *Handler) grantPerm(ctx context.Context, ac pb.AuthClient, roleName, path string, t authpb.Permission_Type) error {
	p := toV3(h.opts.V2Prefix, path)
	_, err := ac.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{
		Name: roleName,
		Perm: &authpb.Permission{PermType: t, Key: []byte(p.key), RangeEnd: []byte(p.rangeEnd)},
	})
	return err
}

// mergePerms applies v2 grant and revoke lists to a role's permissions.
func mergePerms(cur permissions, grant, revoke *permissions) permissions {
	set := func(list []string, add, del *[]string) []string {
		m := map[string]bool{}
		for _, p := range list {
			m[p] = true
		}
		if add != nil {
			for _, p := range *add {
				m[p] = true
			}
		}
		if del != nil {
			for _, p := range *del {
				delete(m, p)
			}
		}
		out := []string{}
		for p := range m {
			out = append(out, p)
		}
		sort.Strings(out)
		return out
	}
	var gr, gw, rr, rw *[]string
	if grant != nil {
		gr, gw = &grant.KV.Read, &grant.KV.Write
	}
	if revoke != nil {
		rr, rw = &revoke.KV.Read, &revoke.KV.Write
	}
	return permissions{KV: kvPerms{Read: set(cur.KV.Read, gr, rr), Write: set(cur.KV.Write, gw, rw)}}
}
