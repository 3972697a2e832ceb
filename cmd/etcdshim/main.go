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
		var xe exitError
		if errors.As(err, &xe) {
			// The command has said what there is to say (v2 verify's
			// summary); only an error of its own is printed.
			if xe.err != nil {
				fmt.Fprintln(os.Stderr, "etcdshim: "+xe.err.Error())
			}
			os.Exit(xe.code)
		}
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

// exitError ends the process with code, printing err when there is one.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e exitError) Unwrap() error { return e.err }
