package v2store

import (
	"context"
	"time"
)

// GetOptions are a GET's parameters.
type GetOptions struct {
	Recursive bool
	Sorted    bool
	// Quorum asks for a linearizable read; otherwise the member answers
	// from its local state, as 3.4's default GET.
	Quorum bool
}

// SetOptions are a PUT's or POST's parameters, already validated.
type SetOptions struct {
	Value     string
	Dir       bool
	TTL       *time.Duration // nil: none; set: expire after it
	Refresh   bool
	PrevExist *bool
	PrevValue string // "" means not given
	PrevIndex uint64 // 0 means not given
}

// DeleteOptions are a DELETE's parameters.
type DeleteOptions struct {
	Dir       bool
	Recursive bool
	PrevValue string
	PrevIndex uint64
}

// Store is the v2 keyspace. Errors are *Error for v2 conditions; anything
// else is an upstream failure (answered as error 300).
type Store interface {
	// Get bounds its own calls to the member, so callers need not set a
	// deadline: a read answered from memory then pays for no timer.
	Get(ctx context.Context, key string, o GetOptions) (*Event, Meta, error)
	// Put covers set, create, update and compare-and-swap (PUT).
	Put(ctx context.Context, key string, o SetOptions) (*Event, Meta, error)
	// CreateInOrder creates a key with a generated increasing name under dir (POST).
	CreateInOrder(ctx context.Context, dir string, o SetOptions) (*Event, Meta, error)
	// Delete covers delete and compare-and-delete.
	Delete(ctx context.Context, key string, o DeleteOptions) (*Event, Meta, error)
	// CanRead checks, cheaply, that the caller may read key (and below it
	// when recursive); watches use it before they wait.
	CanRead(ctx context.Context, key string, recursive bool) error
}
