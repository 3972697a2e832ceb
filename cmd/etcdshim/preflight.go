package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/migrate/preflight"
	"github.com/spf13/cobra"
)

// preflightOptions is the preflight command's own flags, decoded once by
// cobra into this struct; preflight shares no setting with the proxy's
// Config except the upstream TLS flags, which keep their meaning.
type preflightOptions struct {
	Endpoints      []string
	Shims          []string
	Target         string
	Output         string
	TLS            upstreamTLSFlags
	DialTimeout    time.Duration
	CommandTimeout time.Duration
	LogLevel       string
}

// errBlocked makes main exit 1 after the report was printed.
var errBlocked = errors.New("preflight found blockers")

func newPreflightCommand() *cobra.Command {
	var o preflightOptions
	cmd := &cobra.Command{
		Use:   "preflight --endpoints URL,... --target 3.6",
		Short: "Check a cluster before a rolling upgrade and print the plan",
		Long: `preflight checks what etcd's upgrade guide asks before a rolling upgrade — every member
healthy, one minor step from what the members run, a leader, no alarms, no v2 data where the
target refuses it — lists the clients the shims still serve on legacy surfaces, and prints the
plan: a snapshot from the leader, then one member at a time, followers first, leader last.

--endpoints are the members' own client URLs (behind the shims). Exit status: 0 when nothing
blocks the upgrade (warnings may be printed), 1 on blockers, 2 on invalid flags.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPreflight(cmd, o)
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&o.Endpoints, "endpoints", nil, "members' client URLs (every member, comma-separated)")
	fs.StringVar(&o.Target, "target", "", "etcd minor version to upgrade to, e.g. 3.6")
	fs.StringSliceVar(&o.Shims, "shims", nil, "shims' client URLs whose /debug/legacy to summarise")
	fs.StringVarP(&o.Output, "output", "o", "text", "text or json")
	o.TLS.register(fs, "the members")
	fs.DurationVar(&o.DialTimeout, "dial-timeout", 2*time.Second, "time limit of one connection")
	fs.DurationVar(&o.CommandTimeout, "command-timeout", 5*time.Second, "time limit of one request")
	fs.StringVar(&o.LogLevel, "log-level", "warn", "debug, info, warn, error (zap JSON on stderr)")
	return cmd
}

func (o preflightOptions) validate() (preflight.Version, error) {
	if len(o.Endpoints) == 0 {
		return preflight.Version{}, &config.Error{Msg: "preflight: --endpoints is required (every member's client URL)"}
	}
	for _, ep := range o.Endpoints {
		if _, err := config.ParseEndpointURL(ep); err != nil {
			return preflight.Version{}, &config.Error{Msg: "preflight: --endpoints: " + err.Error()}
		}
	}
	for _, s := range o.Shims {
		if _, err := config.ParseEndpointURL(s); err != nil {
			return preflight.Version{}, &config.Error{Msg: "preflight: --shims: " + err.Error()}
		}
	}
	if o.Target == "" {
		return preflight.Version{}, &config.Error{Msg: "preflight: --target is required (e.g. --target 3.6)"}
	}
	target, err := preflight.ValidateTarget(o.Target)
	if err != nil {
		return target, &config.Error{Msg: "preflight: --target: " + err.Error()}
	}
	if o.Output != "text" && o.Output != "json" {
		return target, &config.Error{Msg: fmt.Sprintf("preflight: --output %q: want text or json", o.Output)}
	}
	if !o.TLS.paired() {
		return target, &config.Error{Msg: "preflight: --cert and --key go together"}
	}
	if o.DialTimeout <= 0 || o.CommandTimeout <= 0 {
		return target, &config.Error{Msg: "preflight: --dial-timeout and --command-timeout must be positive"}
	}
	return target, nil
}

func runPreflight(cmd *cobra.Command, o preflightOptions) error {
	target, err := o.validate()
	if err != nil {
		return err
	}
	log, err := newLogger(o.LogLevel)
	if err != nil {
		return &config.Error{Msg: "preflight: " + err.Error()}
	}
	defer func() { _ = log.Sync() }()
	// The proxy's own upstream TLS builder, so the flags mean the same.
	tc, err := o.TLS.config()
	if err != nil {
		return &config.Error{Msg: "preflight: " + err.Error()}
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	trim := func(in []string) []string {
		var out []string
		for _, s := range in {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	report, err := preflight.Run(ctx, target, preflight.Options{
		Endpoints:      trim(o.Endpoints),
		Shims:          trim(o.Shims),
		TLS:            tc,
		DialTimeout:    o.DialTimeout,
		RequestTimeout: o.CommandTimeout,
		Logger:         log.Named("preflight"),
	})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if o.Output == "json" {
		err = preflight.WriteJSON(out, report)
	} else {
		err = preflight.WriteText(out, report)
	}
	if err != nil {
		return err
	}
	if n := report.Blockers(); n > 0 {
		return fmt.Errorf("%w: %d (see the report)", errBlocked, n)
	}
	return nil
}
