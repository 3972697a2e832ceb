package v2cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/internal/redact"
	"github.com/etcdshim/etcdshim/internal/reqbody"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
)

// serveMembers is 3.4's membersHandler on the v3 Cluster API.
func (h *Handler) serveMembers(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, "GET", "POST", "DELETE", "PUT") {
		return
	}
	ctx, cancel, err := h.ctx(r)
	if err != nil {
		h.writeUpstreamError(w, err)
		return
	}
	defer cancel()
	sub := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v2/members"), "/")
	cc := etcdrpc.NewClusterClient(h.up.ClientConn())
	switch r.Method {
	case http.MethodGet:
		switch sub {
		case "":
			ml, err := h.memberList(ctx)
			if err != nil {
				h.writeUpstreamError(w, err)
				return
			}
			setClusterID(w, ml.Header)
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
			writeJSON(w, http.StatusOK, out)
		case "leader":
			st, err := etcdrpc.NewMaintenanceClient(h.up.ClientConn()).Status(ctx, &pb.StatusRequest{})
			if err != nil {
				h.writeUpstreamError(w, err)
				return
			}
			setClusterID(w, st.Header)
			if st.Leader == 0 {
				writeMessage(w, http.StatusServiceUnavailable, "During election")
				return
			}
			ml, err := h.memberList(ctx)
			if err != nil {
				h.writeUpstreamError(w, err)
				return
			}
			for _, m := range ml.Members {
				if m.ID == st.Leader {
					writeJSON(w, http.StatusOK, h.toV2(m))
					return
				}
			}
			writeMessage(w, http.StatusServiceUnavailable, "During election")
		default:
			writeMessage(w, http.StatusNotFound, "Not found")
		}
	case http.MethodPost:
		peers, ok := h.readPeerURLs(w, r)
		if !ok {
			return
		}
		resp, err := cc.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: peers})
		if err != nil {
			if isPeerExists(err) {
				writeMessage(w, http.StatusConflict, "membership: peerURL exists")
				return
			}
			h.writeUpstreamError(w, err)
			return
		}
		setClusterID(w, resp.Header)
		writeJSON(w, http.StatusCreated, member{ID: idString(resp.Member.ID), PeerURLs: nonNil(resp.Member.PeerURLs), ClientURLs: []string{}})
	case http.MethodDelete:
		id, raw, ok := memberID(w, sub)
		if !ok {
			return
		}
		resp, err := cc.MemberRemove(ctx, &pb.MemberRemoveRequest{ID: id})
		if err != nil {
			if isNotFound(err) {
				h.mu.Lock()
				gone := h.removed[id]
				h.mu.Unlock()
				if gone {
					writeMessage(w, http.StatusGone, "Member permanently removed: "+raw)
					return
				}
				writeMessage(w, http.StatusNotFound, "No such member: "+raw)
				return
			}
			h.writeUpstreamError(w, err)
			return
		}
		h.mu.Lock()
		h.removed[id] = true
		h.mu.Unlock()
		setClusterID(w, resp.Header)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		id, raw, ok := memberID(w, sub)
		if !ok {
			return
		}
		peers, ok := h.readPeerURLs(w, r)
		if !ok {
			return
		}
		resp, err := cc.MemberUpdate(ctx, &pb.MemberUpdateRequest{ID: id, PeerURLs: peers})
		switch {
		case err == nil:
			setClusterID(w, resp.Header)
			w.WriteHeader(http.StatusNoContent)
		case isPeerExists(err):
			writeMessage(w, http.StatusConflict, "membership: peerURL exists")
		case isNotFound(err):
			writeMessage(w, http.StatusNotFound, "No such member: "+raw)
		default:
			h.writeUpstreamError(w, err)
		}
	}
}

// memberID parses the id in /v2/members/<id>; 3.4 answers 405 without one
// and 404 for one that does not parse.
func memberID(w http.ResponseWriter, s string) (uint64, string, bool) {
	if s == "" {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return 0, s, false
	}
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		writeMessage(w, http.StatusNotFound, "No such member: "+s)
		return 0, s, false
	}
	return id, s, true
}

// readPeerURLs decodes {"peerURLs":[…]} as 3.4 does: JSON content type
// required, every URL absolute http(s) with a host.
func (h *Handler) readPeerURLs(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		writeMessage(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Bad Content-Type %s, accept application/json", ct))
		return nil, false
	}
	var req struct {
		PeerURLs []string `json:"peerURLs"`
	}
	b, err := reqbody.Read(r, h.opts.MaxRequestBytes)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&req); err != nil {
		writeMessage(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	for _, raw := range req.PeerURLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			writeMessage(w, http.StatusBadRequest, fmt.Sprintf("URL address does not have the form \"host:port\": %s", raw))
			return nil, false
		}
	}
	return req.PeerURLs, true
}

func isPeerExists(err error) bool { return etcderr.Is(err, rpctypes.ErrGRPCPeerURLExist) }

func isNotFound(err error) bool { return etcderr.Is(err, rpctypes.ErrGRPCMemberNotFound) }

// writeUpstreamError answers as 3.4 answers errors it has no v2 shape for:
// 500 {"message":"Internal Server Error"}, except that a call no member
// served says so in the same words as every other surface; the cause goes
// to the log.
func (h *Handler) writeUpstreamError(w http.ResponseWriter, err error) {
	if etcderr.Unauthorized(err) {
		writeMessage(w, http.StatusUnauthorized, "Insufficient credentials")
		return
	}
	h.opts.Logger.Warn("v2 cluster request failed upstream", zap.Error(err))
	msg := "Internal Server Error"
	if etcderr.Unavailable(err) {
		msg = redact.Unavailable
	}
	writeMessage(w, http.StatusInternalServerError, msg)
}
