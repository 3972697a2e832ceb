package e2e

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// The README's install commands, exactly as the Install section shows them;
// the test fails if the README stops showing them.
const (
	readmeGoInstall = "go install ./cmd/etcdshim"
	readmeMakeBuild = "make build"
)

// TestInstallFromFreshClone runs the README's install commands in a fresh
// clone of the repository, as a new user would: `go install ./cmd/etcdshim`
// (the version then comes from the build info: the clone's revision, not
// "dev") and `make build` (the Dockerfile's -trimpath -s -w flags, the
// version from git describe). Each binary must run `version`.
func TestInstallFromFreshClone(t *testing.T) {
	e2eParallel(t)
	readme, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	install := section(string(readme), "## Install")
	for _, c := range []string{readmeGoInstall, readmeMakeBuild, "go install github.com/etcdshim/etcdshim/cmd/etcdshim@"} {
		if !strings.Contains(install, c) {
			t.Fatalf("the README's Install section does not show %q:\n%s", c, install)
		}
	}

	dir := t.TempDir()
	clone := filepath.Join(dir, "etcdshim")
	run := func(wd string, env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = wd
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run(dir, nil, "git", "clone", "--quiet", harness.RepoRoot(), clone)
	// Go's default, -buildvcs=auto, stamps the revision into the binary;
	// this machine's go env turns it off (GOFLAGS=-buildvcs=false), which
	// is what a new user does not have.
	goDefault := []string{"GOFLAGS=-buildvcs=auto"}
	rev := run(clone, nil, "git", "rev-parse", "--short=12", "HEAD")

	t.Run(readmeGoInstall, func(t *testing.T) {
		gobin := filepath.Join(dir, "gobin")
		args := strings.Fields(readmeGoInstall)
		run(clone, append(goDefault, "GOBIN="+gobin), args[0], args[1:]...)
		out := run(clone, nil, filepath.Join(gobin, "etcdshim"), "version")
		if !strings.Contains(out, "etcdshim Version: ") || strings.Contains(out, "Version: dev\n") || !strings.Contains(out, rev) {
			t.Fatalf("version of a go install'ed binary: want the clone's revision %s in\n%s", rev, out)
		}
		t.Logf("%s", out)
	})

	t.Run(readmeMakeBuild, func(t *testing.T) {
		args := strings.Fields(readmeMakeBuild)
		run(clone, goDefault, args[0], args[1:]...)
		bin := filepath.Join(clone, "bin", "etcdshim")
		out := run(clone, nil, bin, "version")
		describe := run(clone, nil, "git", "describe", "--tags", "--always", "--dirty")
		if !strings.Contains(out, "etcdshim Version: "+describe+"\n") {
			t.Fatalf("version of make build's binary: want %q in\n%s", describe, out)
		}
		// The Dockerfile's flags. go version -m shows -trimpath and cgo
		// (Go does not record -ldflags with -trimpath: they may hold paths);
		// -s -w leave no symbol table and no DWARF.
		// Without the embedded etcd, --embedded says so in one line.
		if out, err := exec.Command(bin, "--embedded").CombinedOutput(); err == nil || !strings.Contains(string(out), "-tags noembed") {
			t.Errorf("%s --embedded: %v\n%s", bin, err, out)
		}
		info := run(clone, nil, "go", "version", "-m", bin)
		// -tags noembed: the sidecar's binary carries no etcd server.
		for _, want := range []string{"-trimpath=true", "CGO_ENABLED=0", "-tags=noembed"} {
			if !strings.Contains(info, want) {
				t.Errorf("go version -m %s lacks %s:\n%s", bin, want, info)
			}
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, sec := range f.Sections {
			if sec.Name == ".symtab" || strings.Contains(sec.Name, "debug_info") {
				t.Errorf("%s has %s: not built with -s -w", bin, sec.Name)
			}
		}
	})
}

// section is a Markdown section's text, from its heading to the next
// heading of the same level.
func section(doc, heading string) string {
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		return ""
	}
	rest := doc[i+1+len(heading):]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

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
