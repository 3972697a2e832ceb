package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// newDrainCommand calls a running shim's admin interface: what a preStop
// hook or a systemd ExecStop does before the member stops.
func newDrainCommand() *cobra.Command {
	var adminURL, member string
	var undo bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "drain",
		Short: "Move traffic off the shim's member before it stops (or back, with --undo)",
		Long: `drain asks a running shim, through its --listen-admin-url, to move leadership away from its
member when it leads, move every client connection and call of its own off the member, and
answer once nothing is in flight there. The member returns to rotation by itself once it has
stopped and serves again; --undo returns it now.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if adminURL == "" {
				return usageError{fmt.Errorf("--admin-url is required (the shim's --listen-admin-url)")}
			}
			target := strings.TrimSuffix(adminURL, "/") + "/drain"
			if member != "" {
				target += "?member=" + url.QueryEscape(member)
			}
			method := http.MethodPost
			if undo {
				method = http.MethodDelete
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, method, target, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("drain: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			_, _ = cmd.OutOrStdout().Write(body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("drain: %s", resp.Status)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&adminURL, "admin-url", os.Getenv("ETCDSHIM_LISTEN_ADMIN_URL"), "the shim's --listen-admin-url (default: $ETCDSHIM_LISTEN_ADMIN_URL)")
	fs.StringVar(&member, "member", "", "client URL of the member to drain (default: the shim's own, the first --endpoints entry)")
	fs.BoolVar(&undo, "undo", false, "return the member to rotation now")
	fs.DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the answer")
	return cmd
}
