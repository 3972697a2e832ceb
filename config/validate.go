package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Validate checks the configuration and returns an *Error that lists every
// problem, each saying what is wrong and how to fix it.
func (c Config) Validate() error {
	var ps problems
	if c.Embedded && len(c.Endpoints) > 0 {
		ps.both("--embedded and --endpoints cannot be used together: drop --endpoints to try the shim on an in-process etcd, or drop --embedded to front real members")
	}
	if !c.Embedded && len(c.Endpoints) == 0 {
		ps.both("no upstream: set --endpoints to the members' client URLs (e.g. --endpoints http://127.0.0.1:2379), or use --embedded")
	}
	if len(c.ListenClientURLs) == 0 {
		ps.both("--listen-client-urls is empty: give at least one URL such as http://127.0.0.1:2379")
	}
	needTLS := false
	for _, flagURLs := range []struct {
		flag string
		urls []string
	}{{"listen-client-urls", c.ListenClientURLs}, {"listen-metrics-urls", c.ListenMetricsURLs}} {
		for _, raw := range flagURLs.urls {
			u, err := ParseListenURL(raw)
			if err != nil {
				ps.bad(flagURLs.flag, raw, urlWhy(err))
				continue
			}
			if u.Scheme == "https" {
				needTLS = true
			}
		}
	}
	for _, f := range []struct {
		flag string
		urls []string
	}{{"endpoints", c.Endpoints}, {"advertise-client-urls", c.AdvertiseClientURLs}} {
		for _, raw := range f.urls {
			if _, err := ParseEndpointURL(raw); err != nil {
				ps.bad(f.flag, raw, urlWhy(err))
			}
		}
	}
	if needTLS && (c.CertFile == "" || c.KeyFile == "") {
		ps.both("an https:// listen URL needs --cert-file and --key-file")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		ps.both("--cert-file and --key-file go together: set both or neither")
	}
	if c.ClientCertAuth && c.TrustedCAFile == "" {
		ps.both("--client-cert-auth needs --trusted-ca-file to verify client certificates")
	}
	if (c.UpstreamCert == "") != (c.UpstreamKey == "") {
		ps.both("--cert and --key (upstream client certificate) go together: set both or neither")
	}
	for _, f := range []struct{ flag, path string }{
		{"cert-file", c.CertFile}, {"key-file", c.KeyFile}, {"trusted-ca-file", c.TrustedCAFile},
		{"cert", c.UpstreamCert}, {"key", c.UpstreamKey}, {"cacert", c.UpstreamCACert},
		{"metric-aliases", c.MetricAliases},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			ps.bad(f.flag, f.path, fmt.Sprintf("not readable: %v", unwrapPathError(err)))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		ps.bad("log-level", c.LogLevel, "want one of debug, info, warn, error")
	}
	switch c.GatewayLegacyMode {
	case "rewrite", "redirect", "off":
	default:
		ps.bad("gateway-legacy-mode", c.GatewayLegacyMode, "want one of rewrite, redirect, off")
	}
	for _, p := range c.GatewayLegacyPrefixes {
		if p != "/v3beta" && p != "/v3alpha" {
			ps.bad("gateway-legacy-prefixes", p, "want /v3beta or /v3alpha")
		}
	}
	if c.MaxRequestBytes <= 0 {
		ps.bad("max-request-bytes", fmt.Sprint(c.MaxRequestBytes), "must be positive")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"health-interval", c.HealthInterval}, {"health-timeout", c.HealthTimeout}, {"dial-timeout", c.DialTimeout}, {"metrics-timeout", c.MetricsTimeout}, {"v2-request-timeout", c.V2RequestTimeout}} {
		if d.v <= 0 {
			ps.bad(d.flag, d.v.String(), "must be a positive duration such as 1s")
		}
	}
	if c.ShutdownTimeout < 0 {
		ps.bad("shutdown-timeout", c.ShutdownTimeout.String(), "must not be negative")
	}
	if c.FailbackWindow < 0 {
		ps.bad("failback-window", c.FailbackWindow.String(), "must not be negative")
	}
	if c.DrainTimeout <= 0 {
		ps.bad("drain-timeout", c.DrainTimeout.String(), "must be a positive duration such as 30s")
	}
	if c.ListenAdminURL != "" {
		if err := CheckAdminURL(c.ListenAdminURL); err != nil {
			ps.bad("listen-admin-url", c.ListenAdminURL, err.Error())
		}
	}
	for _, n := range []struct {
		flag string
		v    int64
	}{{"v2-read-cache-max-bytes", c.V2ReadCacheMaxBytes}, {"gc-headroom-bytes", c.GCHeadroomBytes}} {
		if n.v < 0 {
			ps.bad(n.flag, fmt.Sprint(n.v), "must not be negative")
		}
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"v2-watch-history", c.V2WatchHistory}, {"legacy-clients-max", c.LegacyClientsMax}, {"v2-token-cache-size", c.V2TokenCacheSize}} {
		if n.v <= 0 {
			ps.bad(n.flag, fmt.Sprint(n.v), "must be positive")
		}
	}
	if c.Password != "" && (c.User == "" || strings.Contains(c.User, ":")) {
		ps.both("--password needs --user without a password in it (--user name --password pw, or --user name:pw)")
	}
	if (c.V2GuestPassword != "") && c.V2GuestUser == "" {
		ps.both("--v2-guest-password needs --v2-guest-user")
	}
	if c.V2Prefix != "" && (!strings.HasPrefix(c.V2Prefix, "/") || strings.HasSuffix(c.V2Prefix, "/")) {
		ps.bad("v2-prefix", c.V2Prefix, "must start with / and not end with / (e.g. /v2)")
	}
	switch c.DebugAccess {
	case "loopback", "all", "none":
	default:
		ps.bad("debug-access", c.DebugAccess, "must be loopback, all or none")
	}
	if c.ResponseWriteTimeout < 0 {
		ps.bad("response-write-timeout", c.ResponseWriteTimeout.String(), "must not be negative (0: no bound)")
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"v2-max-key-depth", c.V2MaxKeyDepth}, {"v2-max-key-bytes", c.V2MaxKeyBytes}} {
		if n.v <= 0 {
			ps.bad(n.flag, fmt.Sprint(n.v), "must be positive")
		}
	}
	if c.MetricsEndpoint != "" {
		if _, err := ParseEndpointURL(c.MetricsEndpoint); err != nil {
			ps.bad("metrics-endpoint", c.MetricsEndpoint, urlWhy(err))
		}
	}
	return ps.err()
}

// problems collects what Validate finds.
type problems []Problem

func (ps *problems) bad(key, value, why string) {
	*ps = append(*ps, Problem{Key: key, Value: value, Why: why})
}

// both records a problem of several settings together.
func (ps *problems) both(why string) { *ps = append(*ps, Problem{Why: why}) }

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: ps}
}

// urlWhy is a URL error without the URL, which the Problem shows already.
func urlWhy(err error) string {
	var ue *urlError
	if errors.As(err, &ue) {
		return "bad URL: " + ue.why + " (e.g. http://127.0.0.1:2379)"
	}
	return err.Error()
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// ParseListenURL parses a listen URL: http or https, with a host and port.
func ParseListenURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is shown already
		}
		return nil, errBadURL(raw, err.Error())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errBadURL(raw, "scheme must be http or https")
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return nil, errBadURL(raw, "needs host:port")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errBadURL(raw, "must not have a path")
	}
	return u, nil
}

// ParseEndpointURL parses a member or advertised client URL.
func ParseEndpointURL(raw string) (*url.URL, error) { return ParseListenURL(raw) }

type urlError struct{ raw, why string }

func (e *urlError) Error() string {
	return "bad URL " + quote(e.raw) + ": " + e.why + " (e.g. http://127.0.0.1:2379)"
}

func errBadURL(raw, why string) error { return &urlError{raw: raw, why: why} }

func quote(s string) string { return "\"" + s + "\"" }
