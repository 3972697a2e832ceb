package v2auth

import (
	"context"
	"net/http"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// getEnabled says whether auth is on; open to anyone, as in 3.4 (a GET
// with a wrong password is answered).
func (h *Handler) getEnabled(w http.ResponseWriter, r *http.Request, _ string) error {
	st, err := h.status(r)
	if err != nil {
		return err
	}
	v2edge.SetClusterID(w, st.Header.GetClusterId())
	v2edge.WriteJSON(w, http.StatusOK, struct {
		Enabled bool `json:"enabled"`
	}{st.Enabled})
	return nil
}

func (h *Handler) enable(w http.ResponseWriter, r *http.Request, _ string) error {
	return h.turn(w, r, true)
}

func (h *Handler) disable(w http.ResponseWriter, r *http.Request, _ string) error {
	return h.turn(w, r, false)
}

// turn switches auth on or off; switching it to what it is is a conflict.
func (h *Handler) turn(w http.ResponseWriter, r *http.Request, on bool) error {
	st, err := h.status(r)
	if err != nil {
		return err
	}
	v2edge.SetClusterID(w, st.Header.GetClusterId())
	switch {
	case on && st.Enabled:
		return authErr(http.StatusConflict, "already enabled")
	case !on && !st.Enabled:
		return authErr(http.StatusConflict, "already disabled")
	}
	err = h.call(r, func(ctx context.Context, ac pb.AuthClient) (err error) {
		if on {
			_, err = ac.AuthEnable(ctx, &pb.AuthEnableRequest{})
		} else {
			_, err = ac.AuthDisable(ctx, &pb.AuthDisableRequest{})
		}
		return err
	})
	if is(err, rpctypes.ErrGRPCRootUserNotExist) || is(err, rpctypes.ErrGRPCRootRoleNotExist) {
		return authErr(http.StatusConflict, "No root user available, please create one")
	}
	if err != nil {
		return err
	}
	v2edge.WriteEmpty(w, http.StatusOK)
	return nil
}
