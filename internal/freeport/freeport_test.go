package freeport

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
)

// TestGetIsUniqueUnderConcurrency hands out ports from many goroutines at
// once and checks that none is given twice and each can be bound.
func TestGetIsUniqueUnderConcurrency(t *testing.T) {
	const n = 64
	ports := make([]int, n)
	var wg sync.WaitGroup
	for i := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := Get()
			if err != nil {
				t.Error(err)
				return
			}
			ports[i] = p
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	low, high := portRange()
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < low || p >= high {
			t.Fatalf("port %d outside %d-%d", p, low, high)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		l.Close()
	}
}

// TestReservationHoldsAcrossProcesses checks that a port this process holds
// is not handed to another process: the child tries to lock it and must fail.
func TestReservationHoldsAcrossProcesses(t *testing.T) {
	if os.Getenv("FREEPORT_CHILD") != "" {
		f, ok, err := lock(os.Getenv("FREEPORT_CHILD"))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			f.Close()
			t.Fatal("child locked a port the parent holds")
		}
		return
	}
	p, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	path := lockPath(t, p)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestReservationHoldsAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FREEPORT_CHILD="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func lockPath(t *testing.T, p int) string {
	t.Helper()
	return os.TempDir() + "/etcdshim-ports/" + strconv.Itoa(p)
}
