package config

import (
	"net"
	"net/url"
	"os"
	"strings"
)

// Validate checks the configuration and returns an *Error that says what is
// wrong and how to fix it.
func (c Config) Validate() error {
	if c.Embedded && len(c.Endpoints) > 0 {
		return invalid("--embedded and --endpoints cannot be used together: drop --endpoints to try the shim on an in-process etcd, or drop --embedded to front real members")
	}
	if !c.Embedded && len(c.Endpoints) == 0 {
		return invalid("no upstream: set --endpoints to the members' client URLs (e.g. --endpoints http://127.0.0.1:2379), or use --embedded")
	}
	if len(c.ListenClientURLs) == 0 {
		return invalid("--listen-client-urls is empty: give at least one URL such as http://127.0.0.1:2379")
	}
	needTLS := false
	for _, flagURLs := range []struct {
		flag string
		urls []string
	}{{"listen-client-urls", c.ListenClientURLs}, {"listen-metrics-urls", c.ListenMetricsURLs}} {
		for _, raw := range flagURLs.urls {
			u, err := ParseListenURL(raw)
			if err != nil {
				return invalid("--%s: %v", flagURLs.flag, err)
			}
			if u.Scheme == "https" {
				needTLS = true
			}
		}
	}
	for _, raw := range c.Endpoints {
		if _, err := ParseEndpointURL(raw); err != nil {
			return invalid("--endpoints: %v", err)
		}
	}
	for _, raw := range c.AdvertiseClientURLs {
		if _, err := ParseEndpointURL(raw); err != nil {
			return invalid("--advertise-client-urls: %v", err)
		}
	}
	if needTLS && (c.CertFile == "" || c.KeyFile == "") {
		return invalid("an https:// listen URL needs --cert-file and --key-file")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return invalid("--cert-file and --key-file go together: set both or neither")
	}
	if c.ClientCertAuth && c.TrustedCAFile == "" {
		return invalid("--client-cert-auth needs --trusted-ca-file to verify client certificates")
	}
	if (c.UpstreamCert == "") != (c.UpstreamKey == "") {
		return invalid("--cert and --key (upstream client certificate) go together: set both or neither")
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
			return invalid("--%s %s is not readable: %v", f.flag, f.path, unwrapPathError(err))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return invalid("--log-level %q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.GatewayLegacyMode {
	case "rewrite", "redirect", "off":
	default:
		return invalid("--gateway-legacy-mode %q is not one of rewrite, redirect, off", c.GatewayLegacyMode)
	}
	for _, p := range c.GatewayLegacyPrefixes {
		if p != "/v3beta" && p != "/v3alpha" {
			return invalid("--gateway-legacy-prefixes: %q is not /v3beta or /v3alpha", p)
		}
	}
	if c.MaxRequestBytes <= 0 {
		return invalid("--max-request-bytes must be positive")
	}
	if c.HealthInterval <= 0 || c.HealthTimeout <= 0 || c.DialTimeout <= 0 {
		return invalid("--health-interval, --health-timeout and --dial-timeout must be positive durations such as 1s")
	}
	if c.ShutdownTimeout < 0 || c.MetricsTimeout <= 0 {
		return invalid("--shutdown-timeout must not be negative and --metrics-timeout must be positive")
	}
	if c.V2ReadCacheMaxBytes < 0 {
		return invalid("--v2-read-cache-max-bytes must not be negative")
	}
	if c.GCHeadroomBytes < 0 {
		return invalid("--gc-headroom-bytes must not be negative")
	}
	if c.V2WatchHistory <= 0 || c.LegacyClientsMax <= 0 || c.V2TokenCacheSize <= 0 {
		return invalid("--v2-watch-history, --legacy-clients-max and --v2-token-cache-size must be positive")
	}
	if (c.V2GuestPassword != "") && c.V2GuestUser == "" {
		return invalid("--v2-guest-password needs --v2-guest-user")
	}
	if c.V2Prefix != "" && (!strings.HasPrefix(c.V2Prefix, "/") || strings.HasSuffix(c.V2Prefix, "/")) {
		return invalid("--v2-prefix %q must start with / and not end with / (e.g. /v2)", c.V2Prefix)
	}
	if c.MetricsEndpoint != "" {
		if _, err := ParseEndpointURL(c.MetricsEndpoint); err != nil {
			return invalid("--metrics-endpoint: %v", err)
		}
	}
	return nil
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
		return nil, errBadURL(raw, err.Error())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errBadURL(raw, "scheme must be http or https")
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
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
