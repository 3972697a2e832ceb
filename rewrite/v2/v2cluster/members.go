package v2cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// serveMember answers one method of /v2/members[/sub]; ctx carries the
// request's credentials and timeout.
type serveMember func(h *Handler, ctx context.Context, w http.ResponseWriter, r *http.Request, sub string)

// memberRoutes are 3.4's membersHandler on the v3 Cluster API.
var memberRoutes = v2edge.NewRouter(
	v2edge.On(http.MethodGet, serveMember((*Handler).getMembers)),
	v2edge.On(http.MethodPost, serveMember((*Handler).addMember)),
	v2edge.On(http.MethodDelete, serveMember((*Handler).removeMember)),
	v2edge.On(http.MethodPut, serveMember((*Handler).updateMember)))

func (h *Handler) serveMembers(w http.ResponseWriter, r *http.Request) {
	serve, ok := memberRoutes.Find(w, r)
	if !ok {
		return
	}
	ctx, cancel, err := h.ctx(r)
	if err != nil {
		h.writeUpstreamError(w, err)
		return
	}
	defer cancel()
	serve(h, ctx, w, r, strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v2/members"), "/"))
}

func (h *Handler) getMembers(ctx context.Context, w http.ResponseWriter, _ *http.Request, sub string) {
	switch sub {
	case "":
		h.listMembers(ctx, w)
	case "leader":
		h.getLeader(ctx, w)
	default:
		v2edge.WriteMessage(w, http.StatusNotFound, "Not found")
	}
}

func (h *Handler) listMembers(ctx context.Context, w http.ResponseWriter) {
	ml, err := h.memberList(ctx)
	if err != nil {
		h.writeUpstreamError(w, err)
		return
	}
	v2edge.SetClusterID(w, ml.Header.GetClusterId())
	sortMembers(ml.Members)
	out := struct {
		Members []member `json:"members"`
	}{Members: []member{}}
	for _, m := range ml.Members {
		if m.IsLearner {
			continue // 3.4's v2 API has no learners
		}
		out.Members = append(out.Members, h.toV2(m))
	}
	v2edge.WriteJSON(w, http.StatusOK, out)
}

// getLeader answers the leader, or 503 during an election.
func (h *Handler) getLeader(ctx context.Context, w http.ResponseWriter) {
	st, err := etcdrpc.NewMaintenanceClient(h.up.ClientConn()).Status(ctx, &pb.StatusRequest{})
	if err == nil {
		v2edge.SetClusterID(w, st.Header.GetClusterId())
	}
	var leader *pb.Member
	if err == nil && st.Leader != 0 {
		leader, err = h.member(ctx, st.Leader)
	}
	switch {
	case err != nil:
		h.writeUpstreamError(w, err)
	case leader == nil:
		v2edge.WriteMessage(w, http.StatusServiceUnavailable, "During election")
	default:
		v2edge.WriteJSON(w, http.StatusOK, h.toV2(leader))
	}
}

// member is the member with id (nil: none has it).
func (h *Handler) member(ctx context.Context, id uint64) (*pb.Member, error) {
	ml, err := h.memberList(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range ml.Members {
		if m.ID == id {
			return m, nil
		}
	}
	return nil, nil
}

// addMember adds a member (whatever the path names after /v2/members, as
// 3.4).
func (h *Handler) addMember(ctx context.Context, w http.ResponseWriter, r *http.Request, _ string) {
	peers, ok := h.readPeerURLs(w, r)
	if !ok {
		return
	}
	resp, err := h.cluster().MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: peers})
	if err != nil {
		if isPeerExists(err) {
			v2edge.WriteMessage(w, http.StatusConflict, "membership: peerURL exists")
			return
		}
		h.writeUpstreamError(w, err)
		return
	}
	v2edge.SetClusterID(w, resp.Header.GetClusterId())
	v2edge.WriteJSON(w, http.StatusCreated, member{ID: idString(resp.Member.ID), PeerURLs: nonNil(resp.Member.PeerURLs), ClientURLs: []string{}})
}

// removeMember removes a member; 410 for one this shim removed already.
func (h *Handler) removeMember(ctx context.Context, w http.ResponseWriter, _ *http.Request, sub string) {
	id, ok := memberID(w, sub)
	if !ok {
		return
	}
	resp, err := h.cluster().MemberRemove(ctx, &pb.MemberRemoveRequest{ID: id})
	switch {
	case err == nil:
		h.mu.Lock()
		h.removed[id] = true
		h.mu.Unlock()
		v2edge.SetClusterID(w, resp.Header.GetClusterId())
		w.WriteHeader(http.StatusNoContent)
	case isNotFound(err) && h.wasRemoved(id):
		v2edge.WriteMessage(w, http.StatusGone, "Member permanently removed: "+sub)
	case isNotFound(err):
		v2edge.WriteMessage(w, http.StatusNotFound, "No such member: "+sub)
	default:
		h.writeUpstreamError(w, err)
	}
}

func (h *Handler) wasRemoved(id uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.removed[id]
}

// updateMember replaces a member's peer URLs.
func (h *Handler) updateMember(ctx context.Context, w http.ResponseWriter, r *http.Request, sub string) {
	id, ok := memberID(w, sub)
	if !ok {
		return
	}
	peers, ok := h.readPeerURLs(w, r)
	if !ok {
		return
	}
	resp, err := h.cluster().MemberUpdate(ctx, &pb.MemberUpdateRequest{ID: id, PeerURLs: peers})
	switch {
	case err == nil:
		v2edge.SetClusterID(w, resp.Header.GetClusterId())
		w.WriteHeader(http.StatusNoContent)
	case isPeerExists(err):
		v2edge.WriteMessage(w, http.StatusConflict, "membership: peerURL exists")
	case isNotFound(err):
		v2edge.WriteMessage(w, http.StatusNotFound, "No such member: "+sub)
	default:
		h.writeUpstreamError(w, err)
	}
}

func (h *Handler) cluster() pb.ClusterClient { return etcdrpc.NewClusterClient(h.up.ClientConn()) }

// memberID parses the id in /v2/members/<id>; 3.4 answers 405 without one
// and 404 for one that does not parse.
func memberID(w http.ResponseWriter, s string) (uint64, bool) {
	if s == "" {
		v2edge.MethodNotAllowed(w)
		return 0, false
	}
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		v2edge.WriteMessage(w, http.StatusNotFound, "No such member: "+s)
		return 0, false
	}
	return id, true
}

// readPeerURLs decodes {"peerURLs":[…]} as 3.4 does: JSON content type
// required, at least one URL, every URL absolute http(s) with a host.
func (h *Handler) readPeerURLs(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		v2edge.WriteMessage(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Bad Content-Type %s, accept application/json", ct))
		return nil, false
	}
	var req struct {
		PeerURLs []string `json:"peerURLs"`
	}
	b, err := h.opts.Limits.ReadBody(r)
	if err != nil {
		v2edge.WriteMessage(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&req); err != nil {
		v2edge.WriteMessage(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	if len(req.PeerURLs) == 0 {
		// 3.4's types.NewURLs; the member would refuse the call, which
		// the shim once answered with a 500.
		v2edge.WriteMessage(w, http.StatusBadRequest, "no valid URLs given")
		return nil, false
	}
	for _, raw := range req.PeerURLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			v2edge.WriteMessage(w, http.StatusBadRequest, fmt.Sprintf("URL address does not have the form \"host:port\": %s", raw))
			return nil, false
		}
	}
	return req.PeerURLs, true
}

func isPeerExists(err error) bool { return etcderr.Is(err, rpctypes.ErrGRPCPeerURLExist) }

func isNotFound(err error) bool { return etcderr.Is(err, rpctypes.ErrGRPCMemberNotFound) }

// writeUpstreamError answers as 3.4 answers errors it has no v2 shape for
// (v2edge.WriteError).
func (h *Handler) writeUpstreamError(w http.ResponseWriter, err error) {
	v2edge.WriteError(w, err, h.opts.Logger)
}
