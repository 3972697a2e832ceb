package harness

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/freeport"
)

// Versions maps the short names tests use to the etcd releases built by
// scripts/build-etcd.sh; "3.4" is Debian's /usr/bin/etcd (3.4.23).
var Versions = map[string]string{"3.5": "v3.5.35", "3.6": "v3.6.16", "3.7": "v3.7.3"}

var (
	buildMu  sync.Mutex
	shimOnce sync.Once
	shimPath string
	shimErr  error
)

// RepoRoot is the module root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func cacheDir() string {
	if d := os.Getenv("ETCDSHIM_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "etcdshim")
}

// EtcdBinary returns the etcd server binary for a version, building it into
// the cache when missing.
func EtcdBinary(tb testing.TB, version string) string {
	tb.Helper()
	if version == "3.4" {
		if _, err := os.Stat("/usr/bin/etcd"); err != nil {
			tb.Fatalf("etcd 3.4 missing: apt-get install etcd-server (make test does it)")
		}
		return "/usr/bin/etcd"
	}
	full, ok := Versions[version]
	if !ok {
		tb.Fatalf("unknown etcd version %q", version)
	}
	bin := filepath.Join(cacheDir(), "etcd-"+full, "etcd")
	buildMu.Lock()
	defer buildMu.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("bash", filepath.Join(RepoRoot(), "scripts", "build-etcd.sh"), full)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building etcd %s: %v\n%s", full, err, out)
	}
	return bin
}

// EtcdctlBinary is Debian's etcdctl 3.4 (v2 and v3 APIs).
func EtcdctlBinary(tb testing.TB) string {
	tb.Helper()
	if _, err := os.Stat("/usr/bin/etcdctl"); err != nil {
		tb.Fatalf("etcdctl missing: apt-get install etcd-client (make test does it)")
	}
	return "/usr/bin/etcdctl"
}

// ShimBinary builds the shim once per test process. ETCDSHIM_E2E_BINARY
// names a prebuilt shim to use instead (for testing one build while the
// tree is being edited).
func ShimBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("ETCDSHIM_E2E_BINARY"); p != "" {
		return p
	}
	shimOnce.Do(func() {
		dir, err := os.MkdirTemp("", "etcdshim-bin-")
		if err != nil {
			shimErr = err
			return
		}
		shimPath = filepath.Join(dir, "etcdshim")
		cmd := exec.Command("go", "build", "-o", shimPath, "./cmd/etcdshim")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			shimErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if shimErr != nil {
		tb.Fatal(shimErr)
	}
	return shimPath
}

// FreePort returns a free 127.0.0.1 port, reserved for this test process
// against every other process that uses internal/freeport.
func FreePort(tb testing.TB) int {
	tb.Helper()
	p, err := freeport.Get()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// process is a started child with its log file.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	exitErr error
}

func startProcess(tb testing.TB, logPath string, env []string, bin string, args ...string) *process {
	tb.Helper()
	if testing.Short() {
		// make unit (go test -short ./...) starts no servers: a test that
		// needs them skips under -short before it gets here.
		tb.Fatalf("starting %s under -short: skip the test first when testing.Short()", filepath.Base(bin))
	}
	f, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("starting %s: %v", bin, err)
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *process) signal(sig os.Signal) {
	if p.running() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM and waits, then SIGKILL after timeout.
func (p *process) stop(timeout time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

func (p *process) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func dumpOnFailure(tb testing.TB, name, path string) {
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("--- last lines of %s (%s) ---\n%s", name, path, tail(path, 40))
		}
	})
}

// waitHTTP polls url until ok returns true or the deadline passes.
func waitHTTP(ctx context.Context, client *http.Client, url string, ok func(*http.Response) bool) error {
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if ok(resp) {
				return nil
			}
			last = fmt.Errorf("%s: %d %s", url, resp.StatusCode, buf.String())
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// EtcdBenchmarkBinary is etcd's own v3 benchmark tool (tools/benchmark),
// built by scripts/build-benchmark.sh into the cache.
func EtcdBenchmarkBinary(tb testing.TB) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	out, err := exec.Command("bash", filepath.Join(RepoRoot(), "scripts", "build-benchmark.sh")).CombinedOutput()
	if err != nil {
		tb.Fatalf("building etcd's benchmark tool: %v\n%s", err, out)
	}
	s := strings.TrimSpace(string(out))
	return s[strings.LastIndex(s, " ")+1:]
}
