package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ShimConfig describes a shim to start.
type ShimConfig struct {
	// Endpoints are the upstream members' client URLs.
	Endpoints []string
	// Args are extra flags.
	Args []string
	// Env are extra environment variables (KEY=value).
	Env []string
	// TLS serves https with these files (and upstream TLS if the endpoints
	// are https).
	TLS *TLSFiles
	// Binary is a shim binary to run instead of the tree's (a baseline
	// build, for a side-by-side comparison).
	Binary string
	// Port is the client port to listen on (default: a free one), for
	// shims that must know each other's URLs before they start.
	Port int
}

// Shim is a running etcdshim process.
type Shim struct {
	// URL is the client URL (http://127.0.0.1:port or https).
	URL string
	// LogPath is the shim's stderr (zap JSON).
	LogPath string
	Cmd     *exec.Cmd
	proc    *process
	args    []string
	env     []string
	binary  string // "" for the tree's
}

// StartShim starts the shim binary and waits until /health answers.
func StartShim(tb testing.TB, cfg ShimConfig) *Shim {
	tb.Helper()
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	port := cfg.Port
	if port == 0 {
		port = FreePort(tb)
	}
	url := fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
	args := []string{"--listen-client-urls", url, "--log-level", "debug"}
	if len(cfg.Endpoints) > 0 {
		args = append(args, "--endpoints", strings.Join(cfg.Endpoints, ","))
	}
	if t := cfg.TLS; t != nil {
		args = append(args, "--cert-file", t.ServerCert, "--key-file", t.ServerKey, "--trusted-ca-file", t.CA)
		if t.ClientCertAuth {
			args = append(args, "--client-cert-auth")
		}
		if len(cfg.Endpoints) > 0 && strings.HasPrefix(cfg.Endpoints[0], "https") {
			args = append(args, "--cacert", t.CA, "--cert", t.ClientCert, "--key", t.ClientKey)
		}
	}
	args = append(args, cfg.Args...)
	s := &Shim{URL: url, LogPath: filepath.Join(tb.TempDir(), "etcdshim.log"), args: args, env: cfg.Env, binary: cfg.Binary}
	s.start(tb, cfg.TLS)
	tb.Cleanup(func() {
		if s.proc.running() {
			s.proc.stop(15 * time.Second)
		}
	})
	return s
}

func (s *Shim) start(tb testing.TB, t *TLSFiles) {
	tb.Helper()
	dumpOnFailure(tb, "etcdshim", s.LogPath)
	bin := s.binary
	if bin == "" {
		bin = ShimBinary(tb)
	}
	s.proc = startProcess(tb, s.LogPath, s.env, bin, s.args...)
	s.Cmd = s.proc.cmd
	tr := &http.Transport{}
	if t != nil {
		tr.TLSClientConfig = t.ClientConfig()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &http.Client{Transport: tr, Timeout: 3 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/health", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return
		}
		if !s.proc.running() {
			tb.Fatalf("etcdshim exited: %v\n%s", s.proc.exitErr, tail(s.LogPath, 30))
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("etcdshim did not answer /health: %v\n%s", err, tail(s.LogPath, 30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Signal sends sig to the shim.
func (s *Shim) Signal(sig os.Signal) { s.proc.signal(sig) }

// waitBound is how long Wait gives a shim to exit: one still running then
// is stuck, and is killed rather than left to hang the suite.
const waitBound = 2 * time.Minute

// Wait waits for the shim to exit and returns its exit code; -1 when it had
// to kill a shim still running after waitBound.
func (s *Shim) Wait() int {
	select {
	case <-s.proc.done:
	case <-time.After(waitBound):
		s.proc.kill()
		return -1
	}
	var ee *exec.ExitError
	if errors.As(s.proc.exitErr, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal())
		}
		return ee.ExitCode()
	}
	return 0
}

// Stop sends SIGTERM and waits.
func (s *Shim) Stop(tb testing.TB) {
	tb.Helper()
	s.proc.stop(15 * time.Second)
}

// PID is the shim's process id.
func (s *Shim) PID() int { return s.proc.cmd.Process.Pid }

// Etcdctl runs /usr/bin/etcdctl with env added to the environment and a
// 30-second limit, returning its combined output.
func Etcdctl(tb testing.TB, env []string, args ...string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, EtcdctlBinary(tb), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// EtcdctlLines starts a long-running etcdctl command (watch, elect) with
// env added to the environment and returns the lines it prints, the channel
// closing when it exits, and a function that stops it. It is stopped when
// the test ends at the latest.
func EtcdctlLines(tb testing.TB, env []string, args ...string) (<-chan string, func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, EtcdctlBinary(tb), args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		cancel()
		tb.Fatalf("etcdctl %s: %v", strings.Join(args, " "), err)
	}
	lines, read := make(chan string, 100), make(chan struct{})
	go func() {
		defer close(read)
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-read // Wait closes stdout: read it to the end first
			_ = cmd.Wait()
		})
	}
	tb.Cleanup(stop)
	return lines, stop
}

// RunShim runs the shim binary once, with env added to the environment and
// a one-minute limit, and returns its stdout, its stderr and its exit
// status; a run that could not start fails the test.
func RunShim(tb testing.TB, env []string, args ...string) (stdout, stderr string, code int) {
	tb.Helper()
	bin := ShimBinary(tb) // built before the clock starts
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		tb.Fatalf("etcdshim %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String(), code
}
