package waitfor

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTB records a Fatalf and ends the goroutine, as testing.T does.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
	runtime.Goexit()
}

// run calls fn with a fakeTB on a goroutine of its own (Fatalf ends it) and
// reports whether it failed.
func run(fn func(tb *fakeTB)) bool {
	tb := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
	}()
	<-done
	return tb.failed != ""
}

func TestTrue(t *testing.T) {
	t.Run("holds after a few checks", func(t *testing.T) {
		var n atomic.Int32
		if run(func(tb *fakeTB) { True(tb, time.Minute, "three checks", func() bool { return n.Add(1) == 3 }) }) {
			t.Fatal("failed although the condition came to hold")
		}
		if n.Load() != 3 {
			t.Fatalf("checked %d times, want 3", n.Load())
		}
	})
	t.Run("never holds", func(t *testing.T) {
		if !run(func(tb *fakeTB) { True(tb, 10*time.Millisecond, "nothing", func() bool { return false }) }) {
			t.Fatal("did not fail")
		}
	})
}

func TestRecv(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	var got int
	if run(func(tb *fakeTB) { got = Recv(tb, ch, time.Minute, "a value") }) || got != 7 {
		t.Fatalf("Recv = %d, want 7", got)
	}
	if !run(func(tb *fakeTB) { Recv(tb, ch, 10*time.Millisecond, "a value never sent") }) {
		t.Fatal("did not fail on an empty channel")
	}
}

func TestGroup(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(1)
	release := make(chan struct{})
	go func() {
		<-release
		wg.Done()
	}()
	if !run(func(tb *fakeTB) { Group(tb, &wg, 10*time.Millisecond, "a stuck goroutine") }) {
		t.Fatal("did not fail while the group was running")
	}
	close(release)
	if run(func(tb *fakeTB) { Group(tb, &wg, time.Minute, "the goroutine") }) {
		t.Fatal("failed although the group finished")
	}
}
