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
	"go.uber.org/zap"
)

// startAdmin serves the admin interface on --listen-admin-url (validated to
// be loopback) and returns its stop function; a no-op when it is off.
func startAdmin(cfg config.Config, pool *proxy.Pool, log *zap.Logger) (func(), error) {
	if cfg.ListenAdminURL == "" {
		return func() {}, nil
	}
	// Checked here too, not only in Validate: this is what keeps clients
	// from draining the shim.
	if err := config.CheckAdminURL(cfg.ListenAdminURL); err != nil {
		return nil, &config.Error{Msg: "--listen-admin-url " + cfg.ListenAdminURL + ": " + err.Error()}
	}
	u, err := config.ParseListenURL(cfg.ListenAdminURL)
	if err != nil {
		return nil, &config.Error{Msg: "--listen-admin-url: " + err.Error()}
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.ListenAdminURL, err)
	}
	srv := &http.Server{
		Handler:           proxy.NewAdmin(pool, cfg.DrainTimeout, log),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener failed", zap.Error(err))
		}
	}()
	log.Info("serving the admin interface", zap.String("url", cfg.ListenAdminURL))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
