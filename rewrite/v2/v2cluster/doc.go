// Package v2cluster answers etcd 3.4's v2 cluster endpoints from the v3
// Cluster and Maintenance APIs: /v2/members (list, leader, add, update,
// remove), /v2/machines and /v2/stats/{self,leader,store}.
//
// Legacy clients discover the cluster here before they touch a key and then
// talk to the advertised client URLs directly, so every URL this package
// advertises reaches a shim, never a bare member: this shim's
// --advertise-client-urls for its own member, --v2-member-shim-urls for the
// others, and, for members with no mapping, this shim's URLs too.
package v2cluster
