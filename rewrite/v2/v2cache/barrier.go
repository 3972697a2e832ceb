package v2cache

import (
	"context"
	"errors"
	"time"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// barrier is one freshness check shared by the reads that joined it before
// it was sent: it ends when the cache holds everything up to rev, the
// member's revision when the barrier was sent.
type barrier struct {
	done   chan struct{}
	rev    int64
	header pb.ResponseHeader
	err    error
}

// join returns the barrier not sent yet, starting the goroutine that
// passes barriers if none runs.
func (c *Cache) join() *barrier {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = &barrier{done: make(chan struct{})}
	}
	b := c.pending
	if !c.running {
		c.running = true
		go c.passBarriers()
	}
	return b
}

// passBarriers passes pending barriers one at a time: reads that arrive
// while one is in flight wait for the next, which is sent after they came.
func (c *Cache) passBarriers() {
	for {
		c.mu.Lock()
		b := c.pending
		c.pending = nil
		if b == nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		b.err = c.pass(b)
		close(b.done)
	}
}

var errNotServing = errors.New("the cache stopped serving")

func (c *Cache) pass(b *barrier) error {
	c.m.barriers.Inc()
	ctx, cancel := context.WithTimeout(*c.runCtx.Load(), c.opts.BarrierTimeout)
	defer cancel()
	// An anonymous read of one key: the member's revision now, and an
	// error (so the read goes to the member) when anonymous reads are
	// refused, as with auth on.
	key, _ := v2store.Keyspace(c.opts.Prefix)
	r, err := c.kv.Range(c.anonymous(ctx), &pb.RangeRequest{Key: key, CountOnly: true, Serializable: true})
	if err != nil {
		return err
	}
	b.header, b.rev = *r.Header, r.Header.Revision
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		c.mu.Lock()
		advanced := c.advanced
		c.mu.Unlock()
		s := c.snap.Load()
		switch {
		case s == nil:
			return errNotServing
		case s.rev >= b.rev:
			return nil
		}
		c.feed.RequestProgress()
		if retry == nil {
			retry = time.NewTimer(progressRetry)
		} else {
			retry.Reset(progressRetry)
		}
		select {
		case <-advanced:
		case <-retry.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
