package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/etcdshim/etcdshim/config"
	"github.com/etcdshim/etcdshim/proxy"
	"github.com/etcdshim/etcdshim/upstream"
	"go.uber.org/zap"
)

// wireAdmin binds the admin interface on --listen-admin-url (validated to
// be loopback) and adds the listener to lc; nothing when it is off.
func wireAdmin(cfg config.Config, pool *upstream.Pool, log *zap.Logger, lc *lifecycle) error {
	if cfg.ListenAdminURL == "" {
		return nil
	}
	// Checked here too, not only in Validate: this is what keeps clients
	// from draining the shim.
	if err := config.CheckAdminURL(cfg.ListenAdminURL); err != nil {
		return &config.Error{Msg: "--listen-admin-url " + cfg.ListenAdminURL + ": " + err.Error()}
	}
	u, err := config.ParseListenURL(cfg.ListenAdminURL)
	if err != nil {
		return &config.Error{Msg: "--listen-admin-url: " + err.Error()}
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.ListenAdminURL, err)
	}
	srv := &http.Server{
		Handler:           proxy.NewAdmin(pool, cfg.DrainTimeout, log),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log),
	}
	log.Info("serving the admin interface", zap.String("url", cfg.ListenAdminURL))
	lc.add(actor{name: "admin listener", run: func(ctx context.Context) error {
		return serveUntil(ctx, srv, ln, time.Second)
	}})
	return nil
}

// serveUntil serves srv on ln until ctx ends, then shuts it down, cutting
// what is still open after grace. A context that has already ended only
// closes ln.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	if ctx.Err() != nil {
		return ln.Close()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
