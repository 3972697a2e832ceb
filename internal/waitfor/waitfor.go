package waitfor

import (
	"sync"
	"testing"
	"time"
)

// maxPoll bounds the pause between two checks of a condition; checks start
// a millisecond apart and back off to it.
const maxPoll = 100 * time.Millisecond

// True checks cond until it holds, and fails the test if it has not within d.
func True(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, maxPoll) {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up after %v waiting for %s", d, what)
		}
		time.Sleep(pause)
	}
}

// Recv returns the next value received from ch, and fails the test if none
// comes within d (a closed channel yields its zero value, as a receive does).
func Recv[T any](tb testing.TB, ch <-chan T, d time.Duration, what string) T {
	tb.Helper()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case v := <-ch:
		return v
	case <-t.C:
		tb.Fatalf("gave up after %v waiting for %s", d, what)
		panic("unreachable") // Fatalf ends the goroutine
	}
}

// Group waits for wg, and fails the test if it has not finished within d.
func Group(tb testing.TB, wg *sync.WaitGroup, d time.Duration, what string) {
	tb.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	Recv(tb, done, d, what)
}
