//go:build !noembed

package main

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// busyPort listens on a loopback port until the test ends.
func busyPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// picks makes pickPort hand out the given ports first, then free ones, and
// counts the picks.
func picks(t *testing.T, first ...int) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	old := pickPort
	t.Cleanup(func() { pickPort = old })
	pickPort = func() (int, error) {
		if i := int(n.Add(1)) - 1; i < len(first) {
			return first[i], nil
		}
		return old()
	}
	return &n
}

func embedTestConfig(t *testing.T) func(clientPort, peerPort int) *embed.Config {
	dir := t.TempDir()
	return func(clientPort, peerPort int) *embed.Config {
		return embedConfig(config.Config{EmbeddedDataDir: dir}, zap.NewNop(), &atomic.Bool{}, clientPort, peerPort)
	}
}

// TestEmbeddedPortTakenMeanwhile: a picked port that another process binds
// before the member does costs a new pair of ports, not the start.
func TestEmbeddedPortTakenMeanwhile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded etcd")
	}
	busy := busyPort(t)
	n := picks(t, busy) // the client port is taken
	e, clientURL, err := startEtcdOnFreePorts(embedTestConfig(t))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer e.Close()
	waitfor.Recv(t, e.Server.ReadyNotify(), time.Minute, "the member to be ready")
	if got := n.Load(); got != 4 {
		t.Fatalf("%d ports picked, want 4 (two pairs)", got)
	}
	u, err := url.Parse(clientURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == strconv.Itoa(busy) || u.Host != e.Clients[0].Addr().String() {
		t.Fatalf("client URL %s, listening on %s (the taken port was %d)", clientURL, e.Clients[0].Addr(), busy)
	}
}

// TestEmbeddedPortsAlwaysTaken: the tries are bounded, and the error says
// the port is in use.
func TestEmbeddedPortsAlwaysTaken(t *testing.T) {
	busy := busyPort(t)
	first := make([]int, 2*bindTries)
	for i := range first {
		first[i] = busy
	}
	n := picks(t, first...)
	_, _, err := startEtcdOnFreePorts(embedTestConfig(t))
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("err %v, want EADDRINUSE", err)
	}
	if got := n.Load(); got != 2*bindTries {
		t.Fatalf("%d ports picked, want %d (%d tries)", got, 2*bindTries, bindTries)
	}
}
