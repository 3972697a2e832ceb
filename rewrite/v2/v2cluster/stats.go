package v2cluster

import (
	"net/http"
	"time"

	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2edge"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// StoreStats are 3.4's /v2/stats/store counters, kept by the shim's v2 layer.
type StoreStats struct {
	GetSuccess              uint64 `json:"getsSuccess"`
	GetFail                 uint64 `json:"getsFail"`
	SetSuccess              uint64 `json:"setsSuccess"`
	SetFail                 uint64 `json:"setsFail"`
	DeleteSuccess           uint64 `json:"deleteSuccess"`
	DeleteFail              uint64 `json:"deleteFail"`
	UpdateSuccess           uint64 `json:"updateSuccess"`
	UpdateFail              uint64 `json:"updateFail"`
	CreateSuccess           uint64 `json:"createSuccess"`
	CreateFail              uint64 `json:"createFail"`
	CompareAndSwapSuccess   uint64 `json:"compareAndSwapSuccess"`
	CompareAndSwapFail      uint64 `json:"compareAndSwapFail"`
	CompareAndDeleteSuccess uint64 `json:"compareAndDeleteSuccess"`
	CompareAndDeleteFail    uint64 `json:"compareAndDeleteFail"`
	ExpireCount             uint64 `json:"expireCount"`
	Watchers                uint64 `json:"watchers"`
}

type leaderInfo struct {
	Leader    string `json:"leader"`
	Uptime    string `json:"uptime"`
	StartTime string `json:"startTime"`
}

type selfStats struct {
	Name                 string     `json:"name"`
	ID                   string     `json:"id"`
	State                string     `json:"state"`
	StartTime            string     `json:"startTime"`
	LeaderInfo           leaderInfo `json:"leaderInfo"`
	RecvAppendRequestCnt uint64     `json:"recvAppendRequestCnt"`
	SendAppendRequestCnt uint64     `json:"sendAppendRequestCnt"`
}

// writeStats writes /v2/stats bodies as 3.4 does: JSON without a newline.
func writeStats(w http.ResponseWriter, v any) { v2edge.WriteJSONNoNewline(w, http.StatusOK, v) }

// members lists the members as r's client.
func (h *Handler) members(r *http.Request) (*pb.MemberListResponse, error) {
	ctx, cancel, err := h.ctx(r)
	if err != nil {
		return nil, err
	}
	defer cancel()
	return h.memberList(ctx)
}

func (h *Handler) status(r *http.Request) (*pb.StatusResponse, error) {
	ctx, cancel, err := h.ctx(r)
	if err != nil {
		return nil, err
	}
	defer cancel()
	return etcdrpc.NewMaintenanceClient(h.up.ClientConn()).Status(ctx, &pb.StatusRequest{})
}

// trackLeader remembers when the current leader was first seen, for
// leaderInfo's uptime and startTime.
func (h *Handler) trackLeader(leader uint64) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.leader != leader {
		h.leader, h.leaderSince = leader, time.Now()
	}
	return h.leaderSince
}

// serveStatsSelf describes the member requests go to. Its name and state
// come from the v3 Status and MemberList APIs; start times are when the shim
// started and first saw the leader (v3 does not expose the member's).
func (h *Handler) serveStatsSelf(w http.ResponseWriter, r *http.Request) {
	st, err := h.status(r)
	if err != nil {
		h.writeUpstreamError(w, err)
		return
	}
	self := selfStats{
		ID:        idString(st.Header.MemberId),
		State:     "StateFollower",
		StartTime: h.started.UTC().Format(time.RFC3339Nano),
	}
	if st.Leader == st.Header.MemberId {
		self.State = "StateLeader"
	}
	if st.Leader != 0 {
		since := h.trackLeader(st.Leader)
		self.LeaderInfo = leaderInfo{Leader: idString(st.Leader), Uptime: time.Since(since).String(), StartTime: since.UTC().Format(time.RFC3339Nano)}
	}
	if ml, err := h.members(r); err == nil {
		for _, m := range ml.Members {
			if m.ID == st.Header.MemberId {
				self.Name = m.Name
			}
		}
	}
	writeStats(w, self)
}

type followerStats struct {
	Latency struct {
		Current           float64 `json:"current"`
		Average           float64 `json:"average"`
		StandardDeviation float64 `json:"standardDeviation"`
		Minimum           float64 `json:"minimum"`
		Maximum           float64 `json:"maximum"`
	} `json:"latency"`
	Counts struct {
		Fail    uint64 `json:"fail"`
		Success uint64 `json:"success"`
	} `json:"counts"`
}

// serveStatsLeader answers 403 on followers as 3.4 does; on the leader it
// lists the followers (latencies are not exposed by v3 and read as zero).
func (h *Handler) serveStatsLeader(w http.ResponseWriter, r *http.Request) {
	st, err := h.status(r)
	if err != nil {
		h.writeUpstreamError(w, err)
		return
	}
	if st.Leader == 0 || st.Leader != st.Header.MemberId {
		v2edge.WriteMessage(w, http.StatusForbidden, "not current leader")
		return
	}
	ml, err := h.members(r)
	if err != nil {
		h.writeUpstreamError(w, err)
		return
	}
	out := struct {
		Leader    string                   `json:"leader"`
		Followers map[string]followerStats `json:"followers"`
	}{Leader: idString(st.Leader), Followers: map[string]followerStats{}}
	for _, m := range ml.Members {
		if m.ID != st.Leader {
			out.Followers[idString(m.ID)] = followerStats{}
		}
	}
	writeStats(w, out)
}

func (h *Handler) serveStatsStore(w http.ResponseWriter, r *http.Request) {
	var s StoreStats
	if h.opts.StoreStats != nil {
		s = h.opts.StoreStats()
	}
	writeStats(w, s)
}
