package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// unitLines returns the values of key= in a systemd unit file, in order.
func unitLines(t *testing.T, path, key string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestSystemdUnitsAsWritten: the VM example (configs/systemd) as an
// operator installs it. systemd's own parser reads both units, the shim's
// and etcd's drop-in (an unknown key or a bad value is a warning there,
// so any line it prints about them fails the test); then the drop-in's
// ExecStop runs exactly as written, with the environment the units give
// it, against a shim that takes its admin URL from that same variable as
// etcdshim.service sets it: the drain that `systemctl stop etcd` runs.
func TestSystemdUnitsAsWritten(t *testing.T) {
	e2eSerial(t)
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze on this machine")
	}
	const installed = "/usr/local/bin/etcdshim"
	bin := harness.ShimBinary(t)
	dir := t.TempDir()
	shimUnit := filepath.Join("..", "configs", "systemd", "etcdshim.service")
	dropIn := filepath.Join("..", "configs", "systemd", "etcd.service.d", "10-etcdshim-drain.conf")
	install := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), installed) {
			t.Fatalf("%s does not run %s", src, installed)
		}
		_ = os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, []byte(strings.ReplaceAll(string(b), installed, bin)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install(shimUnit, filepath.Join(dir, "etcdshim.service"))
	install(dropIn, filepath.Join(dir, "etcd.service.d", "10-etcdshim-drain.conf"))
	// A minimal etcd unit for the drop-in to extend, as a package installs one.
	if err := os.WriteFile(filepath.Join(dir, "etcd.service"), []byte("[Unit]\nDescription=etcd\n[Service]\nExecStart=/usr/bin/etcd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", "./etcdshim.service", "./etcd.service")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "etcdshim.service") || strings.Contains(l, "10-etcdshim-drain.conf") || strings.Contains(l, "etcd.service:") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}

	// The admin URL the units agree on, moved to a free port.
	adminEnv := "ETCDSHIM_LISTEN_ADMIN_URL="
	var adminURL string
	for _, f := range []string{shimUnit, dropIn} {
		for _, e := range unitLines(t, f, "Environment") {
			if v, ok := strings.CutPrefix(e, adminEnv); ok {
				if adminURL != "" && v != adminURL {
					t.Fatalf("the units name two admin URLs: %s and %s", adminURL, v)
				}
				adminURL = v
			}
		}
	}
	if adminURL == "" {
		t.Fatalf("no %s in the units", adminEnv)
	}
	env := []string{adminEnv + fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))}
	stops := unitLines(t, dropIn, "ExecStop")
	if len(stops) != 1 {
		t.Fatalf("the drop-in has %d ExecStop lines, want 1", len(stops))
	}
	// "-": etcd stops even when the drain fails; the command must still work.
	args := strings.Fields(strings.TrimPrefix(stops[0], "-"))
	if args[0] != installed {
		t.Fatalf("ExecStop runs %s", args[0])
	}

	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 3})
	harness.StartShim(t, harness.ShimConfig{Endpoints: cl.SidecarEndpoints(0), Env: env})
	drain := exec.Command(bin, args[1:]...)
	drain.Env = append(os.Environ(), env...)
	got, err := drain.CombinedOutput()
	if err != nil || !strings.Contains(string(got), `"draining":true`) {
		t.Fatalf("the drop-in's ExecStop (%s): %v\n%s", stops[0], err, got)
	}
	if out, _, code := harness.RunShim(t, env, "drain", "--undo"); code != 0 || !strings.Contains(out, `"draining":false`) {
		t.Fatalf("drain --undo: exit %d\n%s", code, out)
	}
}
