package e2e

import (
	"debug/elf"
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
