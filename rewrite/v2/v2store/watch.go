package v2store

// WatchOptions are a v2 watch's parameters (GET ?wait=true), already
// validated.
type WatchOptions struct {
	// Recursive watches everything below the key too.
	Recursive bool
	// Stream keeps the watch after its first event (stream=true);
	// otherwise it ends with it, as a long poll does.
	Stream bool
	// WaitIndex is the first index wanted (an older event the history
	// still holds is delivered at once); 0 means the next event after the
	// store's index.
	WaitIndex uint64
}

// Watcher is one registered v2 watch, as 3.4's store hands them out (its
// store.Watcher): the watch's events, in index order, on a channel.
type Watcher interface {
	// Changes delivers the events the watch sees. It is closed when the
	// watch ends before its caller stops it: a streaming watcher that fell
	// too far behind, history lost to a compaction, an upstream that ended.
	// After the first event of a watch without Stream nothing more comes.
	Changes() <-chan *Change
	// Stop ends the watch and releases what it holds; it returns once
	// nothing runs for it any more.
	Stop()
}
