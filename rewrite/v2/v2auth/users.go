package v2auth

import (
	"context"
	"net/http"
	"sort"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
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

func (u *user) named() string { return u.User }

type userWithRoles struct {
	User  string `json:"user"`
	Roles []role `json:"roles,omitempty"`
}

func (h *Handler) readRole(ctx context.Context, ac pb.AuthClient, name string) (role, error) {
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
		r, err := h.readRole(ctx, ac, rn)
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

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request, _ string) error {
	var out struct {
		Users []userWithRoles `json:"users"`
	}
	return h.answer(w, r, http.StatusOK, &out, func(ctx context.Context, ac pb.AuthClient) error {
		ul, err := ac.UserList(ctx, &pb.AuthUserListRequest{})
		if err != nil {
			return err
		}
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
		v2edge.SetClusterID(w, ul.Header.GetClusterId())
		return nil
	})
}

func (h *Handler) getUser(w http.ResponseWriter, r *http.Request, name string) error {
	var out userWithRoles
	return h.answer(w, r, http.StatusOK, &out, func(ctx context.Context, ac pb.AuthClient) error {
		ug, err := ac.UserGet(ctx, &pb.AuthUserGetRequest{Name: name})
		if err != nil {
			if is(err, rpctypes.ErrGRPCUserNotFound) {
				return authErr(http.StatusNotFound, "User %s does not exist.", name)
			}
			return err
		}
		v2edge.SetClusterID(w, ug.Header.GetClusterId())
		out, err = h.withRoles(ctx, ac, name, ug.Roles, false)
		return err
	})
}

func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request, name string) error {
	return h.answer(w, r, http.StatusOK, nil, func(ctx context.Context, ac pb.AuthClient) error {
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
			v2edge.SetClusterID(w, resp.Header.GetClusterId())
		}
		return err
	})
}

// putUser creates a user, grants and revokes its roles, or changes its
// password, as the body asks (3.4's three modes of a PUT).
func (h *Handler) putUser(w http.ResponseWriter, r *http.Request, name string) error {
	var in user
	if err := h.decodeNamed(r, &in, "User", name); err != nil {
		return err
	}
	regrant := len(in.Grant) > 0 || len(in.Revoke) > 0
	if regrant && len(in.Roles) > 0 {
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
			v2edge.SetClusterID(w, ug.Header.GetClusterId())
		}
		switch {
		case regrant && !exists:
			return authErr(http.StatusNotFound, "User %s doesn't exist.", name)
		case regrant:
			out, err = h.regrantUser(ctx, ac, in, current)
		case exists && len(in.Roles) > 0:
			return authErr(http.StatusConflict, "User %s already exists.", name)
		case !exists:
			code, out, err = h.createUser(ctx, ac, in)
		default:
			out, err = h.changePassword(ctx, ac, in, current)
		}
		return err
	})
	if err != nil {
		return err
	}
	v2edge.WriteJSON(w, code, out)
	return nil
}

// regrantUser grants and revokes an existing user's roles (and sets its
// password when the body has one).
func (h *Handler) regrantUser(ctx context.Context, ac pb.AuthClient, in user, current []string) (user, error) {
	for _, g := range in.Grant {
		if contains(current, g) {
			return user{}, authErr(http.StatusConflict, "Granting duplicate role %s for user %s", g, in.User)
		}
	}
	for _, rv := range in.Revoke {
		if !contains(current, rv) {
			return user{}, authErr(http.StatusConflict, "Revoking ungranted role %s for user %s", rv, in.User)
		}
	}
	if in.Password != "" {
		if _, err := ac.UserChangePassword(ctx, &pb.AuthUserChangePasswordRequest{Name: in.User, Password: in.Password}); err != nil {
			return user{}, err
		}
	}
	if err := h.grantRoles(ctx, ac, in.User, in.Grant); err != nil {
		return user{}, err
	}
	for _, rv := range in.Revoke {
		if _, err := ac.UserRevokeRole(ctx, &pb.AuthUserRevokeRoleRequest{Name: in.User, Role: rv}); err != nil {
			return user{}, err
		}
	}
	return user{User: in.User, Roles: applyGrants(current, in.Grant, in.Revoke)}, nil
}

// createUser adds a user with its roles; 3.4 answers 201 only when the
// body names no roles.
func (h *Handler) createUser(ctx context.Context, ac pb.AuthClient, in user) (int, user, error) {
	name := in.User
	if in.Password == "" {
		return 0, user{}, authErr(http.StatusBadRequest, "Cannot create user %s with an empty password", name)
	}
	if _, err := ac.UserAdd(ctx, &pb.AuthUserAddRequest{Name: name, Password: in.Password}); err != nil {
		return 0, user{}, err
	}
	roles := in.Roles
	if name == "root" && !contains(roles, rootRoleName) {
		roles = append(roles, rootRoleName) // as 3.4: user root has role root
	}
	if err := h.grantRoles(ctx, ac, name, roles); err != nil {
		return 0, user{}, err
	}
	out := user{User: name, Roles: in.Roles}
	if len(in.Roles) > 0 {
		return http.StatusOK, out, nil
	}
	if name == "root" {
		out.Roles = []string{rootRoleName}
	}
	return http.StatusCreated, out, nil
}

// changePassword sets an existing user's password, the one change a body
// without roles, grants or revokes can ask for.
func (h *Handler) changePassword(ctx context.Context, ac pb.AuthClient, in user, current []string) (user, error) {
	if in.Password == "" {
		return user{}, authErr(http.StatusBadRequest, "User not updated. Use grant/revoke/password to update the user.")
	}
	if _, err := ac.UserChangePassword(ctx, &pb.AuthUserChangePasswordRequest{Name: in.User, Password: in.Password}); err != nil {
		return user{}, err
	}
	return user{User: in.User, Roles: current}, nil
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
