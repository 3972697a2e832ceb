package preflight

import (
	"time"

	"github.com/etcdshim/etcdshim/metricsalias"
)

// Facts is everything Collect learned; Evaluate decides from it alone.
type Facts struct {
	// Members are the --endpoints, in the order given.
	Members []MemberFacts
	// Cluster is the membership as v3 MemberList reports it (nil when it
	// could not be read; ClusterErr says why).
	Cluster    []ClusterMember
	ClusterErr string
	// Alarms are the cluster's active alarms (AlarmsErr when unreadable).
	Alarms    []Alarm
	AlarmsErr string
	// Shims are the --shims, in the order given.
	Shims []ShimFacts
}

// MemberFacts is what one member endpoint answered.
type MemberFacts struct {
	Endpoint string
	// Name and ID come from MemberList, matched on client URLs.
	Name string
	ID   uint64
	// Err is set when the member did not answer /health at all.
	Err string
	// Healthy is /health's "health" field; HealthReason its "reason".
	Healthy      bool
	HealthReason string
	// Server and Cluster are /version's etcdserver and etcdcluster.
	Server, Cluster string
	// MetricsLeader is etcd_server_is_leader from /metrics (nil: unknown).
	MetricsLeader *bool
	// SnapshotsSaved is etcd_debugging_snap_save_total_duration_seconds_count:
	// v2 snapshots this process has saved since it started (nil: unknown).
	SnapshotsSaved *float64
	// StatusMemberID and StatusLeaderID are from v3 Status (0: unknown).
	StatusMemberID, StatusLeaderID uint64
	// V2 is what /v2/keys and /v2/auth answered.
	V2 V2Facts
}

// Reachable reports whether the member answered.
func (m MemberFacts) Reachable() bool { return m.Err == "" }

// V2Facts is the v2 API's answer on one member.
type V2Facts struct {
	// Status is /v2/keys/'s HTTP status (404: v2 API off; 0: not asked or
	// no answer, with Err).
	Status int
	// Nodes are the visible top-level v2 nodes (keys or dirs).
	Nodes []string
	// Users and Roles are v2 auth users and non-root roles.
	Users, Roles []string
	// AuthEnabled is /v2/auth/enable's answer.
	AuthEnabled bool
	Err         string
}

// ClusterMember is one MemberList entry.
type ClusterMember struct {
	Name       string
	ID         uint64
	ClientURLs []string
	PeerURLs   []string
	IsLearner  bool
}

// Alarm is one active alarm.
type Alarm struct {
	MemberID uint64
	// Type is NOSPACE or CORRUPT.
	Type string
}

// ShimFacts is one shim's /debug/legacy.
type ShimFacts struct {
	URL      string
	Err      string
	Since    time.Time
	Surfaces map[string]uint64
	Clients  []LegacyClient
}

// LegacyClient is one client a shim saw on a legacy surface, as its
// /debug/legacy reports it.
type LegacyClient = metricsalias.LegacyClient
