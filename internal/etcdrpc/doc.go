// Package etcdrpc gives clients for etcd's gRPC services (KV, Watch, Lease,
// Cluster, Maintenance, Auth, v3lock, v3election) on any
// grpc.ClientConnInterface. etcd's generated constructors take a concrete
// *grpc.ClientConn, which rules out the upstream pool's failover picker; these take
// the interface and send the same method names and messages.
// DeliveredRevision reads what a watch response proves; RangePages reads a
// range in pages at one revision.
package etcdrpc
