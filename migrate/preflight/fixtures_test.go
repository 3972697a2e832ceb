package preflight

import (
	"fmt"
	"net/http"
)

// member builds a healthy member's facts; ver is its etcdserver, cluster its
// etcdcluster. Member i has id i+1 and endpoint http://10.0.0.i:2379.
func member(i int, ver, cluster string, leader bool) MemberFacts {
	l := leader
	zero := 0.0
	m := MemberFacts{
		Endpoint: fmt.Sprintf("http://10.0.0.%d:2379", i), Name: fmt.Sprintf("m%d", i), ID: uint64(i + 1),
		Healthy: true, Server: ver, Cluster: cluster, MetricsLeader: &l, SnapshotsSaved: &zero,
		StatusMemberID: uint64(i + 1), V2: V2Facts{Status: http.StatusNotFound},
	}
	return m
}

// cluster builds facts for members with the given versions; leader is an index.
func cluster(cluster string, leader int, versions ...string) Facts {
	var f Facts
	for i, v := range versions {
		m := member(i, v, cluster, i == leader)
		m.StatusLeaderID = uint64(leader + 1)
		f.Members = append(f.Members, m)
		f.Cluster = append(f.Cluster, ClusterMember{Name: m.Name, ID: m.ID, ClientURLs: []string{m.Endpoint},
			PeerURLs: []string{fmt.Sprintf("http://10.0.0.%d:2380", i)}})
	}
	return f
}

func mustTarget(s string) Version {
	v, err := ValidateTarget(s)
	if err != nil {
		panic(err)
	}
	return v
}
