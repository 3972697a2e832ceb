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
		var ce *config.Error
		if errors.As(err, &ce) {
			// One line per problem, each naming its setting and value.
			for _, line := range ce.Lines() {
				fmt.Fprintln(os.Stderr, "etcdshim: "+line)
			}
			os.Exit(exitUsage)
		}
		fmt.Fprintln(os.Stderr, "etcdshim: "+err.Error())
		if isUsageError(err) {
			os.Exit(exitUsage)
		}
		os.Exit(1)
	}
}
