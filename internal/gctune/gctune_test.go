package gctune

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"go.uber.org/zap"
)

func read(t *testing.T, name string) uint64 {
	t.Helper()
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("runtime metric %s is not available", name)
	}
	return s[0].Value.Uint64()
}

// collectUntil runs collections until cond holds: the tuner reacts in a
// finalizer, after the collection that freed its sentinel.
func collectUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s (GOGC %d)", what, read(t, "/gc/gogc:percent"))
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

var live []byte // kept reachable to make the live heap large

func TestTuner(t *testing.T) {
	const mib = 1 << 20
	t.Run("small heap gets the headroom", func(t *testing.T) {
		tu := Start(64*mib, zap.NewNop())
		defer tu.Stop()
		collectUntil(t, "a heap goal 64 MiB above the live heap", func() bool {
			return read(t, "/gc/heap/goal:bytes") >= read(t, "/gc/heap/live:bytes")+64*mib*95/100
		})
		if p := read(t, "/gc/gogc:percent"); p <= 100 || int(p) != tu.Percent() {
			t.Fatalf("GOGC %d, tuner says %d: want the tuner's value, above 100", p, tu.Percent())
		}
	})
	t.Run("large heap gets Go's default, after the next collection", func(t *testing.T) {
		tu := Start(16*mib, zap.NewNop())
		defer tu.Stop()
		if tu.Percent() <= 100 {
			t.Fatalf("GOGC %d at start with a small heap: want above 100", tu.Percent())
		}
		live = make([]byte, 64*mib)
		defer func() { live = nil }()
		collectUntil(t, "GOGC back at 100", func() bool { return read(t, "/gc/gogc:percent") == 100 })
		live = nil
		collectUntil(t, "GOGC raised again once the heap shrank", func() bool { return read(t, "/gc/gogc:percent") > 100 })
	})
	t.Run("stop restores the setting found", func(t *testing.T) {
		before := read(t, "/gc/gogc:percent")
		tu := Start(64*mib, zap.NewNop())
		if read(t, "/gc/gogc:percent") == before {
			t.Fatalf("GOGC still %d after Start", before)
		}
		tu.Stop()
		tu.Stop()
		runtime.GC()
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
		if got := read(t, "/gc/gogc:percent"); got != before {
			t.Fatalf("GOGC %d after Stop and two collections, want %d", got, before)
		}
	})
	t.Run("off", func(t *testing.T) {
		before := read(t, "/gc/gogc:percent")
		if tu := Start(0, zap.NewNop()); tu != nil {
			t.Fatal("headroom 0 started a tuner")
		}
		t.Setenv("GOGC", "100")
		if tu := Start(64*mib, zap.NewNop()); tu != nil {
			t.Fatal("an explicit GOGC in the environment did not turn the tuner off")
		}
		var none *Tuner
		none.Stop()
		if got := read(t, "/gc/gogc:percent"); got != before {
			t.Fatalf("GOGC %d, want %d untouched", got, before)
		}
	})
}
