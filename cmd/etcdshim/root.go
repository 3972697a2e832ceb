package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/etcdshim/etcdshim/config"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"os"
)

// usageError marks a command-line mistake cobra reports (unknown flag, bad
// value), which exits 2 like invalid configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func isUsageError(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

func newRootCommand() *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "etcdshim",
		Short: "Serve legacy etcd clients (v2, /v3beta, old metric names) in front of etcd 3.5+",
		Long: `etcdshim takes the client port in front of an etcd member: v3 gRPC and /v3 pass through,
/v3beta and /v3alpha are answered by the shim's own gateway, the v2 API is translated onto v3,
and /metrics carries the pre-3.5 metric names next to the new ones.

Every flag can also be set as an environment variable ETCDSHIM_<FLAG_NAME> (upper case,
dashes as underscores) or as a key in the YAML file given with --config-file.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, warnings, err := config.Load(cmd.Flags(), configFile)
			if err != nil {
				return err
			}
			log, err := newLogger(cfg.LogLevel)
			if err != nil {
				return &config.Error{Msg: err.Error()}
			}
			defer func() { _ = log.Sync() }()
			for _, w := range warnings {
				log.Warn(w)
			}
			return run(cmd.Context(), cfg, log)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		if ce := config.FlagError(err); ce != err {
			return ce
		}
		return usageError{err}
	})
	fs := cmd.Flags()
	config.RegisterFlags(fs, config.Default())
	fs.StringVar(&configFile, "config-file", "", "YAML file with settings (keys are the flag names)")
	cmd.AddCommand(newVersionCommand())
	cmd.AddCommand(newV2Command())
	cmd.AddCommand(newPreflightCommand())
	cmd.AddCommand(newDrainCommand())
	return cmd
}

func newLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	enc.TimeKey = "ts"
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stderr), lvl)
	return zap.New(core, zap.AddCaller()).Named(strings.ToLower("etcdshim")), nil
}
