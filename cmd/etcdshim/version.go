package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…" (make
// build, the Dockerfile); without it the version comes from the build info.
var version = "dev"

func versionString() string {
	if version != "dev" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	return buildInfoVersion(bi)
}

// buildInfoVersion is what `go version -m` shows of a binary: the module
// version (a tag with `go install …@v1.2.3`, a pseudo-version when built in
// a checkout) and the VCS revision when the version does not carry it.
func buildInfoVersion(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	var rev string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" || strings.Contains(v, rev) {
		return v
	}
	if modified {
		rev += "-dirty"
	}
	return v + " (" + rev + ")"
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the shim's version and the Go version it was built with",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "etcdshim Version: %s\nGo Version: %s\nGo OS/Arch: %s/%s\n",
				versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
