package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/etcdshim/etcdshim/config"
)

// exitUsage is the status for invalid configuration, as etcd uses.
const exitUsage = 2

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdshim: "+err.Error())
		var ce *config.Error
		if errors.As(err, &ce) || isUsageError(err) {
			os.Exit(exitUsage)
		}
		os.Exit(1)
	}
}
