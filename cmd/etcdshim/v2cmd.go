package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/migrate/v2migrate"
	"github.com/etcdshim/etcdshim/upstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"golang.org/x/term"
)

// v2Options are the flags of `etcdshim v2 import` and `v2 verify`, decoded
// once into this struct (no global configuration).
type v2Options struct {
	From          string
	FromCert      string
	FromKey       string
	FromCACert    string
	FromUser      string
	Endpoints     []string
	V2Prefix      string
	TLS           upstreamTLSFlags
	SourcePrefix  string
	IncludeHidden []string
	DialTimeout   time.Duration
	LogLevel      string
	// Output is text or json (import: with --dry-run only).
	Output string

	// import
	DryRun    bool
	Follow    bool
	Prune     bool
	Parallel  int
	BatchSize int

	// verify
	TTLTolerance time.Duration
}

func (o *v2Options) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.From, "from", "", "client URL of the source member (etcd 3.4/3.5 with --enable-v2=true)")
	fs.StringVar(&o.FromCert, "from-cert", "", "client certificate for the source")
	fs.StringVar(&o.FromKey, "from-key", "", "client key for the source")
	fs.StringVar(&o.FromCACert, "from-cacert", "", "CA bundle that verifies the source's certificate")
	fs.StringVar(&o.FromUser, "from-user", "", "v2 credentials for the source, user:password (when v2 auth is on)")
	fs.StringSliceVar(&o.Endpoints, "endpoints", nil, "destination members' client URLs (v3 gRPC; the shim's URL works too)")
	fs.StringVar(&o.V2Prefix, "v2-prefix", "", "v3 prefix of the v2 keyspace, as the shim's --v2-prefix")
	o.TLS.register(fs, "the destination members")
	fs.StringVar(&o.SourcePrefix, "source-prefix", "/", "v2 subtree to copy")
	fs.StringSliceVar(&o.IncludeHidden, "include-hidden", nil, "hidden v2 paths (a component starting with _) to copy too: v2 listings never show them")
	fs.DurationVar(&o.DialTimeout, "dial-timeout", 5*time.Second, "time limit of one connection to the source or a destination member")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn, error (zap JSON on stderr)")
	fs.DurationVar(&o.TTLTolerance, "ttl-tolerance", v2migrate.DefaultTTLTolerance, "TTLs this close count as equal")
	fs.StringVar(&o.Output, "output", "text", "text or json (v2 import: with --dry-run)")
}

// validate checks the flags; failures are *config.Error (exit status 2).
func (o *v2Options) validate() error {
	if o.From == "" {
		return &config.Error{Msg: "--from is required: the source member's client URL"}
	}
	if _, err := config.ParseEndpointURL(o.From); err != nil {
		return &config.Error{Msg: "--from: " + err.Error()}
	}
	if len(o.Endpoints) == 0 {
		return &config.Error{Msg: "--endpoints is required: the destination members' client URLs"}
	}
	for _, e := range o.Endpoints {
		if _, err := config.ParseEndpointURL(e); err != nil {
			return &config.Error{Msg: "--endpoints: " + err.Error()}
		}
	}
	if o.V2Prefix != "" && (!strings.HasPrefix(o.V2Prefix, "/") || strings.HasSuffix(o.V2Prefix, "/")) {
		return &config.Error{Msg: fmt.Sprintf("--v2-prefix %q must start with / and not end with / (e.g. /v2)", o.V2Prefix)}
	}
	if !o.TLS.paired() || (o.FromCert == "") != (o.FromKey == "") {
		return &config.Error{Msg: "--cert and --key (and --from-cert and --from-key) go together"}
	}
	if o.FromUser != "" && !strings.Contains(o.FromUser, ":") {
		return &config.Error{Msg: "--from-user must be user:password"}
	}
	if o.DryRun && o.Follow {
		return &config.Error{Msg: "--dry-run and --follow exclude each other"}
	}
	if o.Output != "text" && o.Output != "json" {
		return &config.Error{Msg: fmt.Sprintf("invalid --output %q: want text or json", o.Output)}
	}
	if o.TTLTolerance < 0 || o.Parallel < 0 || o.BatchSize < 0 || o.BatchSize > 120 {
		return &config.Error{Msg: "--ttl-tolerance, --parallel and --batch-size must not be negative; --batch-size at most 120"}
	}
	return nil
}

func (o *v2Options) roots() []string {
	roots := []string{v2migrate.CleanRoot(o.SourcePrefix)}
	for _, h := range o.IncludeHidden {
		if h = strings.TrimSpace(h); h != "" {
			roots = append(roots, v2migrate.CleanRoot(h))
		}
	}
	return roots
}

// connect builds the source client and the destination pool. The returned
// function releases them.
func (o *v2Options) connect(ctx context.Context, log *zap.Logger, progress *v2migrate.Progress) (*v2migrate.Migrator, func(), error) {
	srcTLS, err := upstream.ClientTLS(upstream.TLSFiles{Cert: o.FromCert, Key: o.FromKey, CACert: o.FromCACert}, zap.NewNop())
	if err != nil {
		return nil, nil, &config.Error{Msg: "source TLS (--from-cert/--from-key/--from-cacert): " + err.Error()}
	}
	dstTLS, err := o.TLS.config()
	if err != nil {
		return nil, nil, &config.Error{Msg: err.Error()}
	}
	var eps []*url.URL
	for _, raw := range o.Endpoints {
		u, _ := config.ParseEndpointURL(raw)
		eps = append(eps, u)
	}
	pool, err := upstream.NewPool(upstream.Options{Endpoints: eps, TLS: dstTLS, DialTimeout: o.DialTimeout,
		HealthInterval: time.Second, HealthTimeout: time.Second, Logger: log.Named("pool")})
	if err != nil {
		return nil, nil, fmt.Errorf("destination: %w", err)
	}
	poolCtx, cancel := context.WithCancel(ctx)
	go pool.Run(poolCtx)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     srcTLS,
		TLSHandshakeTimeout: o.DialTimeout,
	}
	src := &v2migrate.Source{URL: strings.TrimSuffix(o.From, "/"), Client: &http.Client{Transport: tr}}
	if o.FromUser != "" {
		src.User, src.Password, _ = strings.Cut(o.FromUser, ":")
	}
	m := v2migrate.New(src, pool.ClientConn(), o.V2Prefix, v2migrate.Options{
		Roots:        o.roots(),
		DryRun:       o.DryRun,
		Prune:        o.Prune,
		BatchSize:    o.BatchSize,
		Parallel:     o.Parallel,
		TTLTolerance: o.TTLTolerance,
		Progress:     progress,
		Logger:       log.Named("v2migrate"),
	})
	// Close before cancel: a probe cancelled mid-flight would be logged as
	// an unhealthy member.
	return m, func() { pool.Close(); cancel(); tr.CloseIdleConnections() }, nil
}

func newV2Command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "v2",
		Short: "Move data from a member's v2 store into the shim's v3 layout",
		Long: `Clusters that used the v2 API hold data in the v2 store, which v3 clients cannot see and etcd 3.6
refuses to start with. "v2 import" copies it into the v3 keys the shim serves v2 clients from,
"v2 verify" compares both sides.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newV2ImportCommand(), newV2VerifyCommand())
	return cmd
}

// newV2Subcommand is a v2 command with the flags both share: run gets them
// validated. The caller registers the command's own flags on the second
// result.
func newV2Subcommand(use, short, long string, run func(*cobra.Command, v2Options) error) (*cobra.Command, *v2Options) {
	var o v2Options
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return run(cmd, o)
		},
	}
	o.register(cmd.Flags())
	return cmd, &o
}

func newV2ImportCommand() *cobra.Command {
	cmd, o := newV2Subcommand("import --from http://member:2379 --endpoints URL[,URL…]",
		"Copy the v2 tree of a live 3.4/3.5 member into the shim's v3 layout (optionally following changes)",
		`Reads the source's v2 tree with one consistent (quorum) read and writes it into the v3 layout the
shim uses (directory markers, hidden keys, in-order names, TTLs as leases with the time left). Nodes
already equal on the destination are skipped, so re-running after an interruption converges. A
destination node of the wrong shape (a file where a directory goes, or the reverse) is reported and
left alone; everything else is imported and the exit status is 1. With --follow it then applies the
source's changes until SIGINT/SIGTERM; when the source's history no longer holds the next change it
re-reads the tree and deletes what the source no longer has.`,
		func(cmd *cobra.Command, opts v2Options) error {
			if opts.Output == "json" && !opts.DryRun {
				return &config.Error{Msg: "--output json goes with --dry-run: an import prints its summary as text"}
			}
			return runV2Import(cmd.Context(), opts, cmd.OutOrStdout(), os.Stderr)
		})
	fs := cmd.Flags()
	fs.BoolVar(&o.DryRun, "dry-run", false, "list what would be written or deleted, one node per line (or --output json), and write nothing")
	fs.BoolVar(&o.Follow, "follow", false, "after the import, apply the source's changes until SIGINT/SIGTERM")
	fs.BoolVar(&o.Prune, "prune", false, "also delete destination nodes below the source prefix that the source does not have")
	fs.IntVar(&o.Parallel, "parallel", v2migrate.DefaultParallel, "write transactions in flight")
	fs.IntVar(&o.BatchSize, "batch-size", v2migrate.DefaultBatchSize, "nodes per write transaction (at most 120: etcd's --max-txn-ops is 128)")
	return cmd
}

// start is how both v2 commands begin: a context that SIGINT or SIGTERM
// ends, and the logger. done releases both.
func (o v2Options) start(parent context.Context) (context.Context, *zap.Logger, func(), error) {
	log, err := newLogger(o.LogLevel)
	if err != nil {
		return nil, nil, nil, &config.Error{Msg: err.Error()}
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	return ctx, log, func() { stop(); _ = log.Sync() }, nil
}

func runV2Import(parent context.Context, o v2Options, stdout, stderr io.Writer) error {
	ctx, log, done, err := o.start(parent)
	if err != nil {
		return err
	}
	defer done()
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	m, release, err := o.connect(ctx, log, v2migrate.NewProgress(stderr, tty, log.Named("progress")))
	if err != nil {
		return err
	}
	defer release()
	sum, err := m.Import(ctx)
	if o.DryRun && (err == nil || errors.Is(err, v2migrate.ErrConflicts)) {
		if perr := printPlan(stdout, o.Output, sum); perr != nil {
			return perr
		}
		if err != nil {
			return exitError{code: 1}
		}
		return nil
	}
	if err != nil && !errors.Is(err, v2migrate.ErrConflicts) {
		if sum.Nodes() > 0 {
			fmt.Fprintln(stdout, "interrupted: "+sum.String())
		}
		return err
	}
	for _, c := range sum.Conflicts {
		fmt.Fprintln(stdout, c.String())
	}
	fmt.Fprintln(stdout, sum.String())
	importErr := err
	if o.Follow {
		fmt.Fprintln(stderr, "following the source's changes; stop with SIGINT or SIGTERM")
		st, ferr := m.Follow(ctx, sum.Indexes)
		for _, c := range st.Conflicts {
			fmt.Fprintln(stdout, c.String())
		}
		fmt.Fprintln(stdout, st.String())
		if ferr != nil {
			return ferr
		}
		if importErr == nil && len(st.Conflicts) > 0 {
			importErr = fmt.Errorf("%d %w while following", len(st.Conflicts), v2migrate.ErrConflicts)
		}
	}
	return importErr
}

func newV2VerifyCommand() *cobra.Command {
	cmd, _ := newV2Subcommand("verify --from http://member:2379 --endpoints URL[,URL…]",
		"Compare the source's v2 tree with the shim's v3 layout; exit 1 when the destination is wrong",
		`Lists, one per line, every node that differs between the source's v2 tree and what the shim would
serve from the destination. Wrong, and to be fixed:
  not on the destination   the source has it, the destination not (not imported yet: re-run v2 import)
  value differs            both have the key, with other values
  dir/file mismatch        a directory on one side, a file on the other
  ttl differs              TTLs further apart than --ttl-tolerance, or only one side has one
Informational, not an error:
  only on the destination  the source lacks it: v2 clients wrote it through the shim after the import,
                           or it was deleted on the source since (v2 import --prune deletes such nodes)
A summary line follows. Exit status: 0 when nothing is wrong (nodes only on the destination allowed),
1 when something is wrong, 2 on invalid flags, 3 when the comparison could not be made (a side
unreachable).`,
		func(cmd *cobra.Command, o v2Options) error { return runV2Verify(cmd.Context(), o, cmd.OutOrStdout()) })
	return cmd
}

func runV2Verify(parent context.Context, o v2Options, stdout io.Writer) error {
	ctx, log, done, err := o.start(parent)
	if err != nil {
		return err
	}
	defer done()
	m, release, err := o.connect(ctx, log, nil)
	if err != nil {
		return exitError{code: exitCannotCompare, err: err}
	}
	defer release()
	res, err := m.Verify(ctx)
	if err != nil {
		return exitError{code: exitCannotCompare, err: err}
	}
	if err := printVerify(stdout, o.Output, res); err != nil {
		return err
	}
	if res.Wrong() > 0 {
		return exitError{code: 1}
	}
	return nil
}

// exitCannotCompare is v2 verify's status when a side could not be read.
const exitCannotCompare = 3

// printVerify lists the wrong nodes, then the informational ones, then the
// summary (text), or one JSON document.
func printVerify(w io.Writer, output string, res v2migrate.VerifyResult) error {
	if output == "json" {
		type diff struct {
			v2migrate.Difference
			Wrong bool `json:"wrong"`
		}
		doc := struct {
			Verdict     string `json:"verdict"`
			Dirs        int    `json:"dirs"`
			Keys        int    `json:"keys"`
			Wrong       int    `json:"wrong"`
			OnlyOnDest  int    `json:"only_on_destination"`
			Summary     string `json:"summary"`
			Differences []diff `json:"differences"`
		}{Verdict: "ok", Dirs: res.Dirs, Keys: res.Keys, Wrong: res.Wrong(),
			OnlyOnDest: len(res.Differences) - res.Wrong(), Summary: res.Summary(), Differences: []diff{}}
		if doc.Wrong > 0 {
			doc.Verdict = "wrong"
		}
		for _, d := range res.Differences {
			doc.Differences = append(doc.Differences, diff{d, d.Wrong()})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	for _, wrong := range []bool{true, false} {
		for _, d := range res.Differences {
			if d.Wrong() == wrong {
				fmt.Fprintln(w, d.String())
			}
		}
	}
	fmt.Fprintln(w, res.Summary())
	return nil
}

// printPlan lists a dry run's writes and deletions and its conflicts, then
// the summary (text), or one JSON document.
func printPlan(w io.Writer, output string, sum v2migrate.Summary) error {
	if output == "json" {
		type conflict struct {
			Path    string `json:"path"`
			Reason  string `json:"reason"`
			Blocked int    `json:"blocked"`
		}
		doc := struct {
			Planned   []v2migrate.Planned `json:"planned"`
			Conflicts []conflict          `json:"conflicts"`
			Dirs      int                 `json:"dirs"`
			Keys      int                 `json:"keys"`
			Bytes     int64               `json:"bytes"`
			Skipped   int                 `json:"skipped"`
			WithTTL   int                 `json:"with_ttl"`
			Pruned    int                 `json:"pruned"`
			Summary   string              `json:"summary"`
		}{Planned: sum.Planned, Conflicts: []conflict{}, Dirs: sum.Dirs, Keys: sum.Keys, Bytes: sum.Bytes,
			Skipped: sum.Skipped, WithTTL: sum.WithTTL, Pruned: sum.Deleted, Summary: sum.String()}
		if doc.Planned == nil {
			doc.Planned = []v2migrate.Planned{}
		}
		for _, c := range sum.Conflicts {
			doc.Conflicts = append(doc.Conflicts, conflict{c.Path, c.Reason, c.Blocked})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	for _, p := range sum.Planned {
		fmt.Fprintln(w, p.String())
	}
	for _, c := range sum.Conflicts {
		fmt.Fprintln(w, c.String())
	}
	fmt.Fprintln(w, sum.String())
	return nil
}
