package v2store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestDirLocksSerialisePerDirectory: holders of one directory never overlap,
// and every waiter gets its turn.
func TestDirLocksSerialisePerDirectory(t *testing.T) {
	var d dirLocks
	var inside, maxInside, done atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := d.lock(context.Background(), "/q")
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				m := maxInside.Load()
				if n <= m || maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(100 * time.Microsecond)
			inside.Add(-1)
			done.Add(1)
			unlock()
		}()
	}
	wg.Wait()
	if got := maxInside.Load(); got != 1 {
		t.Errorf("%d holders of /q at once, want 1", got)
	}
	if got := done.Load(); got != 50 {
		t.Errorf("%d of 50 got their turn", got)
	}
	if n := d.len(); n != 0 {
		t.Errorf("%d entries left after every holder left, want 0", n)
	}
}

// TestDirLocksIndependentDirectories: a held directory does not hold up
// another one (no global lock).
func TestDirLocksIndependentDirectories(t *testing.T) {
	var d dirLocks
	unlockA, err := d.lock(context.Background(), "/a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlockB, err := d.lock(ctx, "/b")
	if err != nil {
		t.Fatalf("/b waited for /a: %v", err)
	}
	if n := d.len(); n != 2 {
		t.Errorf("%d entries, want 2", n)
	}
	unlockB()
	unlockA()
	if n := d.len(); n != 0 {
		t.Errorf("%d entries left, want 0", n)
	}
}

// TestDirLocksWaiterGivesUp: a waiter whose context ends leaves with the
// context's error, does not take the lock later, and leaves no entry behind.
func TestDirLocksWaiterGivesUp(t *testing.T) {
	var d dirLocks
	unlock, err := d.lock(context.Background(), "/q")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := d.lock(ctx, "/q"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter got %v, want the deadline", err)
	}
	if n := d.len(); n != 1 {
		t.Errorf("%d entries while /q is held, want 1", n)
	}
	unlock()
	if n := d.len(); n != 0 {
		t.Errorf("%d entries left after the waiter gave up and the holder left, want 0", n)
	}
	// The lock is free again: the gone waiter took no token.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	unlock, err = d.lock(ctx2, "/q")
	if err != nil {
		t.Fatalf("lock after the waiter gave up: %v", err)
	}
	unlock()
}

// TestDirLocksFreeEntries: many directories used once leave nothing behind.
func TestDirLocksFreeEntries(t *testing.T) {
	var d dirLocks
	for i := 0; i < 1000; i++ {
		unlock, err := d.lock(context.Background(), fmt.Sprintf("/q%d", i))
		if err != nil {
			t.Fatal(err)
		}
		unlock()
	}
	if n := d.len(); n != 0 {
		t.Errorf("%d entries left, want 0", n)
	}
}

func TestInOrderHintsBounded(t *testing.T) {
	var q inOrder
	for i := 0; i < maxHints+100; i++ {
		q.remember(fmt.Sprintf("/d%d", i), uint64(i))
	}
	if n := len(q.hints); n > maxHints {
		t.Errorf("%d hints, bound %d", n, maxHints)
	}
	q.remember("/x", 7)
	q.remember("/x", 9)
	if got := q.hint("/x"); got != 9 {
		t.Errorf("hint %d, want 9", got)
	}
}

func TestParseName(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"00000000000000000042", 42, true},
		{"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false}, // above an index
		{"99999999999999999999", 0, false},
		{"0000000000000000042", 0, false},   // 19 digits
		{"000000000000000000420", 0, false}, // 21 digits
		{"0000000000000000004x", 0, false},
		{"job", 0, false},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, ok := parseName([]byte(c.in))
			if got != c.want || ok != c.ok {
				t.Errorf("parseName(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
			}
		})
	}
}

// TestNothingAbove: the compares cover [from, end) except each stray and
// what sorts right below it, and no 20-digit name escapes them.
func TestNothingAbove(t *testing.T) {
	from, end := []byte("/q/00000000000000000010"), prefixEnd([]byte("/q/"+inOrderLast))
	strays := [][]byte{[]byte("/q/1"), []byte("/q/5abc")}
	cmp := nothingAbove(from, end, strays)
	covered := func(k string) bool {
		for _, c := range cmp {
			if bytes.Compare([]byte(k), c.Key) >= 0 && bytes.Compare([]byte(k), c.RangeEnd) < 0 {
				return true
			}
		}
		return false
	}
	for _, c := range cmp {
		if c.Target != pb.Compare_VERSION || c.Result != pb.Compare_EQUAL || c.GetVersion() != 0 {
			t.Errorf("compare %v is not 'nothing here'", c)
		}
	}
	for _, k := range []string{
		"/q/00000000000000000010", "/q/00000000000000000010/child", "/q/00000000000000000011",
		"/q/09999999999999999999", "/q/10000000000000000000", "/q/19999999999999999999/",
		"/q/50000000000000000000", "/q/59999999999999999999", "/q/99999999999999999999", "/q/99999999999999999999/x",
	} {
		if !covered(k) {
			t.Errorf("name %s escapes the compares %v", k, cmp)
		}
	}
	for _, k := range []string{"/q/1", "/q/1/x", "/q/1-x", "/q/5abc", "/q/5abc/y", "/q/00000000000000000009", "/q/config"} {
		if covered(k) {
			t.Errorf("%s is compared, want it left out", k)
		}
	}
}

func TestStrays(t *testing.T) {
	var s [][]byte
	for _, k := range []string{"/q/5", "/q/1", "/q/3", "/q/1"} {
		s = addStray(s, []byte(k))
	}
	if got := fmt.Sprintf("%s", s); got != "[/q/1 /q/3 /q/5]" {
		t.Errorf("strays %s, want sorted and unique", got)
	}
	if got := fmt.Sprintf("%s", dropBelow(s, []byte("/q/2"))); got != "[/q/3 /q/5]" {
		t.Errorf("dropBelow: %s", got)
	}
	if got := string(component([]byte("/p/q/00000000000000000007/x"), len("/p/q/"))); got != "00000000000000000007" {
		t.Errorf("component %q", got)
	}
}

// TestInOrderDeadlineCause: a create whose deadline passes while earlier
// creates in its directory hold it answers a plain cause naming what
// happened (a 300 at the edge, like 3.4's request timeout), not a
// contention error; other directories are not held up.
func TestInOrderDeadlineCause(t *testing.T) {
	s := NewV3(nil, "")
	unlock, err := s.inOrder.locks.lock(context.Background(), "/q")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, _, err = s.CreateInOrder(ctx, "/q", SetOptions{Value: "x"})
	if !errors.Is(err, ErrInOrderDeadline) {
		t.Fatalf("err %v, want ErrInOrderDeadline", err)
	}
	if want := "create in order /q: waiting for earlier creates in this directory: the request's deadline passed before a free in-order name was won"; err.Error() != want {
		t.Errorf("cause %q, want %q", err, want)
	}
	var ve *Error
	if errors.As(err, &ve) {
		t.Errorf("a v2 error %v, want a plain cause", ve)
	}
}
