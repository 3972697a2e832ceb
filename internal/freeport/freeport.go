package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Fallback bounds when the ephemeral range cannot be read: Linux's default
// ephemeral range starts at 32768.
const (
	defaultLow  = 20000
	defaultHigh = 32768
)

var (
	mu sync.Mutex
	// held keeps each reservation's lock file open (and so locked) for the
	// life of the process; a port in it is never handed out twice.
	held = map[int]*os.File{}
)

// Get reserves a free 127.0.0.1 port for the rest of this process's life.
func Get() (int, error) {
	low, high := portRange()
	dir := filepath.Join(os.TempDir(), "etcdshim-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, fmt.Errorf("port lock directory: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	span := high - low
	start := rand.IntN(span)
	for i := 0; i < span; i++ {
		p := low + (start+i)%span
		if held[p] != nil {
			continue
		}
		f, ok, err := lock(filepath.Join(dir, strconv.Itoa(p)))
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		if !bindable(p) {
			f.Close()
			continue
		}
		held[p] = f
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d", low, high-1)
}

// lock takes an exclusive, non-blocking advisory lock on path. ok is false
// when another process holds it.
func lock(path string) (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false, fmt.Errorf("port lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("port lock %s: %w", path, err)
	}
	return f, true, nil
}

// bindable reports whether nothing listens on the port now (a process that
// does not use this package, or one from before a reboot of the lock files).
func bindable(p int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// portRange is the range below the kernel's ephemeral ports, so no outgoing
// connection can be given a port between its reservation and its bind.
func portRange() (low, high int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultLow, defaultHigh
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defaultLow, defaultHigh
	}
	eph, err := strconv.Atoi(f[0])
	if err != nil || eph <= 2048 {
		return defaultLow, defaultHigh
	}
	low = defaultLow
	if eph <= low+1024 {
		low = 1024
	}
	return low, eph
}
