package etcdrpc

import pb "go.etcd.io/etcd/api/v3/etcdserverpb"

// DeliveredRevision is the revision up to which a watch response proves
// every event delivered, or 0 when it proves nothing. A response's header
// revision is the member's current one, not how far the watch has got: a
// Created response, or a batch of a watch catching up (etcd sends at most
// 1000 revisions of backlog at a time), carries it while older events are
// still to come. So a response with events proves its last event's
// revision, and only a response without events that is neither Created nor
// Canceled, a progress notification, which the member sends once the watch
// is synced, proves its header's.
func DeliveredRevision(resp *pb.WatchResponse) int64 {
	var rev int64
	for _, e := range resp.Events {
		rev = max(rev, e.Kv.ModRevision)
	}
	if len(resp.Events) == 0 && !resp.Created && !resp.Canceled {
		rev = resp.Header.GetRevision()
	}
	return rev
}
