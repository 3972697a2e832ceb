package v2store

import (
	"context"
	"sync"
)

// dirLocks serialises in-order creates per directory within one shim, so
// they never race each other for a name: a queue's producers wait their
// turn instead of failing. Directories do not share a lock (a slow queue
// holds up only its own producers), and an entry lives only while someone
// holds or awaits it, so the map stays as small as the number of busy
// directories. The zero value is ready to use.
type dirLocks struct {
	mu sync.Mutex
	m  map[string]*dirLock
}

type dirLock struct {
	// token holds one value while the lock is held; waiting on a channel
	// (not a sync.Mutex) lets a waiter give up when its request's deadline
	// passes.
	token chan struct{}
	refs  int // holders and waiters
}

// lock waits for dir's turn or for ctx to end; the returned func releases it.
func (d *dirLocks) lock(ctx context.Context, dir string) (func(), error) {
	d.mu.Lock()
	if d.m == nil {
		d.m = make(map[string]*dirLock)
	}
	e := d.m[dir]
	if e == nil {
		e = &dirLock{token: make(chan struct{}, 1)}
		d.m[dir] = e
	}
	e.refs++
	d.mu.Unlock()
	select {
	case e.token <- struct{}{}:
		return func() {
			<-e.token
			d.release(dir, e)
		}, nil
	case <-ctx.Done():
		d.release(dir, e)
		return nil, ctx.Err()
	}
}

func (d *dirLocks) release(dir string, e *dirLock) {
	d.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(d.m, dir)
	}
	d.mu.Unlock()
}

// len is the number of directories held or awaited.
func (d *dirLocks) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}
