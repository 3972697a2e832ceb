// Command benchmark is etcd's own v3 load generator (tools/benchmark of the
// root module go.etcd.io/etcd/v3), built from the Go module proxy. It lives
// in a module of its own so that the shim's go.mod does not carry etcd's
// whole root module; scripts/build-benchmark.sh builds and caches it.
package main

import (
	"os"

	"go.etcd.io/etcd/v3/tools/benchmark/cmd"
)

func main() {
	if err := cmd.RootCmd.Execute(); err != nil {
		os.Exit(1)
	}
}
