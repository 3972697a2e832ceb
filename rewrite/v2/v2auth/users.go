package v2auth

import (
	"context"
	"net/http"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// user is 3.4's auth.User as read from and written to clients.
type user struct {
	User     string   `json:"user"`
	Password string   `json:"password,omitempty"`
	Roles    []string `json:"roles"`
	Grant    []string `json:"grant,omitempty"`
	Revoke   []string `json:"revoke,omitempty"`
}

type userWithRoles struct {
	User  string `json:"user"`
	Roles []role `json:"roles,omitempty"`
}

func (h *Handler) getRole(ctx context.Context, ac pb.AuthClient, name string) (role, error) {
	if name == rootRoleName {
		return rootRole(), nil
	}
	rg, err := ac.RoleGet(ctx, &pb.AuthRoleGetRequest{Role: name})
	if err != nil {
		if is(err, rpctypes.ErrGRPCRoleNotFound) {
			return role{}, authErr(http.StatusNotFound, "Role %s does not exist.", name)
		}
		return role{}, err
	}
	return role{Role: name, Permissions: permsFromV3(h.opts.V2Prefix, rg.Perm)}, nil
}

func (h *Handler) withRoles(ctx context.Context, ac pb.AuthClient, name string, roles []string, skipMissing bool) (userWithRoles, error) {
	out := userWithRoles{User: name}
	for _, rn := range roles {
		r, err := h.getRole(ctx, ac, rn)
		if err != nil {
			if skipMissing {
				continue
			}
			return out, err
		}
		out.Roles = append(out.Roles, r)
	}
	return out, nil
}

func (h *Handler) serveUsers(w http.ResponseWriter, r *http.Request) error {
	if !allow(w, r, "GET") {
		return nil
	}
	var out struct {
		Users []userWithRoles `json:"users"`
	}
	var hdr *pb.ResponseHeader
	err := h.call(r, func(ctx context.Context, ac pb.AuthClient) error {
		ul, err := ac.UserList(ctx, &pb.AuthUserListRequest{})
		if err != nil {
			return err
		}
		hdr = ul.Header
		out.Users = nil
		for _, name := range ul.Users {
			ug, err := ac.UserGet(ctx, &pb.AuthUserGetRequest{Name: name})
			if err != nil {
				return err
			}
			u, err := h.withRoles(ctx, ac, name, ug.Roles, true)
			if err != nil {
				return err
			}
			out.Users = append(out.Users, u)
		}
		return nil
	})
	if err != nil {
		return err
	}
	setClusterID(w, hdr)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) serveUser(w http.ResponseWriter, r *http.Request, name string) error {
	if !allow(w, r, "GET", "PUT", "DELETE") {
		return nil
	}
	switch r.Method {
	case http.MethodGet:
		var out userWithRoles
		err := h.call(r, func(ctx context.Context, ac pb.AuthClient) error {
			ug, err := ac.UserGet(ctx, &pb.AuthUserGetRequest{Name: name})
			if err != nil {
				if is(err, rpctypes.ErrGRPCUserNotFound) {
					return authErr(http.StatusNotFound, "User %s does not exist.", name)
				}
				return err
			}
			setClusterID(w, ug.Header)
			out, err = h.withRoles(ctx, ac, name, ug.Roles, false)
			return err
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	case http.MethodDelete:
		err := h.call(r, func(ctx context.Context, ac pb.AuthClient) error {
			if name == "root" {
				if st, err := ac.AuthStatus(ctx, &pb.AuthStatusRequest{}); err == nil && st.Enabled {
					return authErr(http.StatusForbidden, "Cannot delete root user while auth is enabled.")
				}
			}
			resp, err := ac.UserDelete(ctx, &pb.AuthUserDeleteRequest{Name: name})
			if is(err, rpctypes.ErrGRPCUserNotFound) {
				return authErr(http.StatusNotFound, "User %s does not exist.", name)
			}
			if err == nil {
				setClusterID(w, resp.Header)
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
	return h.putUser(w, r, name)
}

func (h *Handler) putUser(w http.ResponseWriter, r *http.Request, name string) error {
	var in user
	if err := h.decode(r, &in); err != nil {
		return err
	}
	if in.User != name {
		return httpErr(http.StatusBadRequest, "User JSON name does not match the name in the URL")
	}
	if (len(in.Grant) > 0 || len(in.Revoke) > 0) && len(in.Roles) > 0 {
		return httpErr(http.StatusBadRequest, "User JSON contains both roles and grant/revoke")
	}
	code := http.StatusOK
	var out user
	err := h.call(r, func(ctx context.Context, ac pb.AuthClient) error {
		ug, err := ac.UserGet(ctx, &pb.AuthUserGetRequest{Name: name})
		exists := err == nil
		if err != nil && !is(err, rpctypes.ErrGRPCUserNotFound) {
			return err
		}
		var current []string
		if exists {
			current = ug.Roles
			setClusterID(w, ug.Header)
		}
		switch {
		case len(in.Grant) > 0 || len(in.Revoke) > 0:
			if !exists {
				return authErr(http.StatusNotFound, "User %s doesn't exist.", name)
			}
			for _, g := range in.Grant {
				if contains(current, g) {
					return authErr(http.StatusConflict, "Granting duplicate role %s for user %s", g, name)
				}
			}
			for _, rv := range in.Revoke {
				if !contains(current, rv) {
					return authErr(http.StatusConflict, "Revoking ungranted role %s for user %s", rv, name)
				}
			}
			if in.Password != "" {
				if _, err := ac.UserChangePassword(ctx, &pb.AuthUserChangePasswordRequest{Name: name, Password: in.Password}); err != nil {
					return err
				}
			}
			if err := h.grantRoles(ctx, ac, name, in.Grant); err != nil {
				return err
			}
			for _, rv := range in.Revoke {
				if _, err := ac.UserRevokeRole(ctx, &pb.AuthUserRevokeRoleRequest{Name: name, Role: rv}); err != nil {
					return err
				}
			}
			out = user{User: name, Roles: applyGrants(current, in.Grant, in.Revoke)}
		case len(in.Roles) > 0 || !exists:
			if exists {
				return authErr(http.StatusConflict, "User %s already exists.", name)
			}
			if in.Password == "" {
				return authErr(http.StatusBadRequest, "Cannot create user %s with an empty password", name)
			}
			if _, err := ac.UserAdd(ctx, &pb.AuthUserAddRequest{Name: name, Password: in.Password}); err != nil {
				return err
			}
			roles := in.Roles
			if name == "root" && !contains(roles, rootRoleName) {
				roles = append(roles, rootRoleName) // as 3.4: user root has role root
			}
			if err := h.grantRoles(ctx, ac, name, roles); err != nil {
				return err
			}
			out = user{User: name, Roles: in.Roles}
			if len(in.Roles) == 0 {
				code = http.StatusCreated // 3.4 answers 201 only on this path
				if name == "root" {
					out.Roles = []string{rootRoleName}
				}
			}
		default:
			if in.Password == "" {
				return authErr(http.StatusBadRequest, "User not updated. Use grant/revoke/password to update the user.")
			}
			if _, err := ac.UserChangePassword(ctx, &pb.AuthUserChangePasswordRequest{Name: name, Password: in.Password}); err != nil {
				return err
			}
			out = user{User: name, Roles: current}
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, code, out)
	return nil
}

func (h *Handler) grantRoles(ctx context.Context, ac pb.AuthClient, name string, roles []string) error {
	for _, rn := range roles {
		if rn == rootRoleName {
			// v3 needs the root role to exist before it is granted.
			if _, err := ac.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: rootRoleName}); err != nil && !is(err, rpctypes.ErrGRPCRoleAlreadyExist) {
				return err
			}
		}
		if _, err := ac.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: name, Role: rn}); err != nil {
			if is(err, rpctypes.ErrGRPCRoleNotFound) {
				return authErr(http.StatusNotFound, "Role %s does not exist.", rn)
			}
			return err
		}
	}
	return nil
}

func applyGrants(current, grant, revoke []string) []string {
	out := []string{}
	for _, r := range current {
		if !contains(revoke, r) {
			out = append(out, r)
		}
	}
	out = append(out, grant...)
	sort.Strings(out)
	return out
}
