package v2store

import (
	"time"
)

// v2 actions.
const (
	ActionGet              = "get"
	ActionCreate           = "create"
	ActionSet              = "set"
	ActionUpdate           = "update"
	ActionDelete           = "delete"
	ActionCompareAndSwap   = "compareAndSwap"
	ActionCompareAndDelete = "compareAndDelete"
	ActionExpire           = "expire"
)

// Node is a v2 node as clients see it (3.4's NodeExtern).
type Node struct {
	Key           string     `json:"key,omitempty"`
	Value         *string    `json:"value,omitempty"`
	Dir           bool       `json:"dir,omitempty"`
	Expiration    *time.Time `json:"expiration,omitempty"`
	TTL           int64      `json:"ttl,omitempty"`
	Nodes         []*Node    `json:"nodes,omitempty"`
	ModifiedIndex uint64     `json:"modifiedIndex,omitempty"`
	CreatedIndex  uint64     `json:"createdIndex,omitempty"`
}

// Event is a v2 response body: an action on a node.
type Event struct {
	Action   string `json:"action"`
	Node     *Node  `json:"node,omitempty"`
	PrevNode *Node  `json:"prevNode,omitempty"`
}

// Meta is what a response carries besides the event: the etcd index and
// the raft position and cluster for the headers.
type Meta struct {
	EtcdIndex uint64
	RaftIndex uint64
	RaftTerm  uint64
	ClusterID uint64
}

// IsCreated reports whether the write answers 201, as 3.4: create, or a set
// of a key that did not exist.
func (e *Event) IsCreated() bool {
	return e.Action == ActionCreate || (e.Action == ActionSet && e.PrevNode == nil)
}
