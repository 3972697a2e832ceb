package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"

	"go.uber.org/zap"
)

// Go's default GC percentage: the tuner never goes below it.
const defaultPercent = 100

// maxPercent bounds GOGC when almost nothing is live (at start-up).
const maxPercent = 10000

// Tuner re-sets GOGC after every collection; see the package comment.
type Tuner struct {
	headroom uint64
	original int
	samples  []metrics.Sample

	mu      sync.Mutex // orders adjust against Stop
	stopped bool
	percent int // the value last set
}

// Start begins tuning for the given minimum headroom in bytes. It returns
// nil (nothing to stop) when headroom is 0 or GOGC is set in the
// environment: an operator's explicit choice wins.
func Start(headroom uint64, log *zap.Logger) *Tuner {
	if headroom == 0 {
		return nil
	}
	if v, ok := os.LookupEnv("GOGC"); ok {
		log.Info("GOGC is set; the garbage collector headroom is not tuned", zap.String("GOGC", v))
		return nil
	}
	t := &Tuner{headroom: headroom, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	t.original = debug.SetGCPercent(defaultPercent)
	t.adjust()
	t.arm()
	return t
}

// Stop ends tuning and restores the GC percentage found at Start.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		debug.SetGCPercent(t.original)
	}
}

// Percent is the GC percentage the tuner last set.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// sentinel is garbage from birth: its finalizer runs after the collection
// that found it, which is the tuner's cue.
type sentinel struct{ t *Tuner }

func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{t}, func(s *sentinel) {
		if s.t.adjust() {
			s.t.arm()
		}
	})
}

// adjust sets GOGC so that the next heap goal is at least headroom above
// the live heap. GOGC applies to the live heap plus the scanned stacks and
// globals, as the collector counts them. It reports false once stopped.
func (t *Tuner) adjust() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.samples)
	var base uint64
	for _, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			base += s.Value.Uint64()
		}
	}
	percent := maxPercent
	if base > 0 {
		percent = int(min(uint64(maxPercent), (t.headroom*100+base-1)/base))
	}
	percent = max(percent, defaultPercent)
	if percent != t.percent {
		debug.SetGCPercent(percent)
		t.percent = percent
	}
	return true
}
