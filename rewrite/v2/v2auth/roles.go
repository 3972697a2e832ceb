package v2auth

import (
	"context"
	"errors"
	"net/http"
	"sort"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func (h *Handler) listRoles(w http.ResponseWriter, r *http.Request, _ string) error {
	var out struct {
		Roles []role `json:"roles"`
	}
	return h.answer(w, r, http.StatusOK, &out, func(ctx context.Context, ac pb.AuthClient) error {
		rl, err := ac.RoleList(ctx, &pb.AuthRoleListRequest{})
		if err != nil {
			return err
		}
		v2edge.SetClusterID(w, rl.Header.GetClusterId())
		names := append([]string(nil), rl.Roles...)
		if !contains(names, rootRoleName) {
			names = append(names, rootRoleName) // 3.4 always lists the built-in root
		}
		sort.Strings(names)
		out.Roles = nil
		for _, n := range names {
			ro, err := h.readRole(ctx, ac, n)
			if err != nil {
				return err
			}
			out.Roles = append(out.Roles, ro)
		}
		return nil
	})
}

func (h *Handler) getRole(w http.ResponseWriter, r *http.Request, name string) error {
	var out role
	return h.answer(w, r, http.StatusOK, &out, func(ctx context.Context, ac pb.AuthClient) (err error) {
		out, err = h.readRole(ctx, ac, name)
		return err
	})
}

func (h *Handler) deleteRole(w http.ResponseWriter, r *http.Request, name string) error {
	if name == rootRoleName {
		return authErr(http.StatusForbidden, "Cannot modify role %s: is root role.", name)
	}
	return h.answer(w, r, http.StatusOK, nil, func(ctx context.Context, ac pb.AuthClient) error {
		_, err := ac.RoleDelete(ctx, &pb.AuthRoleDeleteRequest{Role: name})
		if is(err, rpctypes.ErrGRPCRoleNotFound) {
			return authErr(http.StatusNotFound, "Role %s does not exist.", name)
		}
		return err
	})
}

// putRole creates a role with its permissions, or grants and revokes
// permissions of an existing one, as the body asks.
func (h *Handler) putRole(w http.ResponseWriter, r *http.Request, name string) error {
	var in role
	if err := h.decodeNamed(r, &in, "Role", name); err != nil {
		return err
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
	err := h.call(r, func(ctx context.Context, ac pb.AuthClient) (err error) {
		if update {
			out, err = h.updateRole(ctx, ac, in)
			return err
		}
		code, out = http.StatusCreated, role{Role: name, Permissions: in.Permissions}
		return h.createRole(ctx, ac, in)
	})
	if err != nil {
		return err
	}
	v2edge.WriteJSON(w, code, out)
	return nil
}

// createRole adds a role with the body's permissions.
func (h *Handler) createRole(ctx context.Context, ac pb.AuthClient, in role) error {
	if _, err := ac.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: in.Role}); err != nil {
		if is(err, rpctypes.ErrGRPCRoleAlreadyExist) {
			return authErr(http.StatusConflict, "Role %s already exists.", in.Role)
		}
		return err
	}
	for path, t := range grants(in.Permissions) {
		if err := h.grantPerm(ctx, ac, in.Role, path, t); err != nil {
			return err
		}
	}
	return nil
}

// updateRole applies the body's grant and revoke lists to an existing
// role: v3 permissions that change are revoked and granted again.
func (h *Handler) updateRole(ctx context.Context, ac pb.AuthClient, in role) (role, error) {
	name := in.Role
	cur, err := h.readRole(ctx, ac, name)
	var e *v2edge.Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return role{}, authErr(http.StatusNotFound, "Role %s doesn't exist.", name)
	}
	if err != nil {
		return role{}, err
	}
	before := grants(cur.Permissions)
	next := grants(mergePerms(cur.Permissions, in.Grant, in.Revoke))
	for path := range before {
		if _, keep := next[path]; keep && next[path] == before[path] {
			continue
		}
		p := toV3(h.opts.V2Prefix, path)
		if _, err := ac.RoleRevokePermission(ctx, &pb.AuthRoleRevokePermissionRequest{Role: name, Key: []byte(p.key), RangeEnd: []byte(p.rangeEnd)}); err != nil {
			return role{}, err
		}
	}
	for path, t := range next {
		if bt, had := before[path]; had && bt == t {
			continue
		}
		if err := h.grantPerm(ctx, ac, name, path, t); err != nil {
			return role{}, err
		}
	}
	return h.readRole(ctx, ac, name)
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
