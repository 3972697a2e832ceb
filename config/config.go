package config

import "time"

// Config is everything the shim can be told. Each field's mapstructure tag is
// its flag name, its YAML key and (upper-cased, dashes as underscores, with an
// ETCDSHIM_ prefix) its environment variable.
type Config struct {
	// ListenClientURLs are the URLs the shim serves clients on (gRPC, JSON
	// gateway, v2, metrics), http:// or https://.
	ListenClientURLs []string `mapstructure:"listen-client-urls"`
	// ListenMetricsURLs are optional extra listeners serving only /metrics,
	// /metrics/shim, /health and the debug pages, as etcd's
	// --listen-metrics-urls.
	ListenMetricsURLs []string `mapstructure:"listen-metrics-urls"`
	// AdvertiseClientURLs are the URLs at which clients reach this shim; the
	// v2 /v2/members and /v2/machines answers list them for this member.
	AdvertiseClientURLs []string `mapstructure:"advertise-client-urls"`
	// Endpoints are the upstream members' client URLs; the first is the
	// sidecar's own member, the others are fallbacks.
	Endpoints []string `mapstructure:"endpoints"`

	// Serving-side TLS, with etcd's flag names.
	CertFile      string `mapstructure:"cert-file"`
	KeyFile       string `mapstructure:"key-file"`
	TrustedCAFile string `mapstructure:"trusted-ca-file"`
	// ClientCertAuth requires clients to present a certificate signed by
	// TrustedCAFile.
	ClientCertAuth bool `mapstructure:"client-cert-auth"`
	// CAFile is etcd's deprecated --ca-file: it sets TrustedCAFile and turns
	// ClientCertAuth on, as etcd does.
	CAFile string `mapstructure:"ca-file"`

	// Upstream-side TLS, with etcd grpc-proxy's flag names.
	UpstreamCert   string `mapstructure:"cert"`
	UpstreamKey    string `mapstructure:"key"`
	UpstreamCACert string `mapstructure:"cacert"`
	// UpstreamInsecureSkipVerify skips upstream certificate verification (tests only).
	UpstreamInsecureSkipVerify bool `mapstructure:"insecure-skip-tls-verify"`

	// HealthInterval is how often each upstream member is probed.
	HealthInterval time.Duration `mapstructure:"health-interval"`
	// HealthTimeout bounds one probe.
	HealthTimeout time.Duration `mapstructure:"health-timeout"`
	// DialTimeout bounds one upstream connection attempt.
	DialTimeout time.Duration `mapstructure:"dial-timeout"`
	// ShutdownTimeout is how long in-flight requests may run after SIGTERM.
	ShutdownTimeout time.Duration `mapstructure:"shutdown-timeout"`
	// ListenAdminURL serves the admin interface (POST/DELETE /drain, GET
	// /prestop) on a loopback address, http:// only; empty: off. It is never
	// served on the client listeners, so a client cannot drain a shim.
	ListenAdminURL string `mapstructure:"listen-admin-url"`
	// FailbackWindow spreads the moves of client connections back to the
	// preferred member once it recovered: each waits a random time below it.
	FailbackWindow time.Duration `mapstructure:"failback-window"`
	// DrainTimeout bounds how long a drain waits for the member to have
	// nothing in flight.
	DrainTimeout time.Duration `mapstructure:"drain-timeout"`

	// LogLevel is debug, info, warn or error.
	LogLevel string `mapstructure:"log-level"`

	// Embedded starts an in-process etcd and serves in front of it.
	Embedded bool `mapstructure:"embedded"`
	// EmbeddedDataDir is the embedded etcd's data directory.
	EmbeddedDataDir string `mapstructure:"embedded-data-dir"`

	// JSON gateway.
	// GatewayLegacyPrefixes are the legacy gateway prefixes served (v3beta, v3alpha).
	GatewayLegacyPrefixes []string `mapstructure:"gateway-legacy-prefixes"`
	// GatewayLegacyMode is rewrite, redirect or off.
	GatewayLegacyMode string `mapstructure:"gateway-legacy-mode"`
	// MaxRequestBytes caps a gateway or v2 request body.
	MaxRequestBytes int64 `mapstructure:"max-request-bytes"`

	// Metrics.
	// MetricsEndpoint is the URL scraped for /metrics (default: first endpoint + /metrics).
	MetricsEndpoint string `mapstructure:"metrics-endpoint"`
	// MetricAliases is a YAML alias table replacing the embedded default.
	MetricAliases string `mapstructure:"metric-aliases"`
	// MetricAliasGroups switches on optional alias groups by name.
	MetricAliasGroups []string `mapstructure:"metric-alias-groups"`
	// MetricsTimeout bounds one upstream scrape.
	MetricsTimeout time.Duration `mapstructure:"metrics-timeout"`
	// LegacyClientsMax bounds the /debug/legacy client table.
	LegacyClientsMax int `mapstructure:"legacy-clients-max"`

	// v2 API.
	// V2Prefix is prepended to every v2 key to form its v3 key.
	V2Prefix string `mapstructure:"v2-prefix"`
	// V2WatchHistory is how many v2 events are kept for waitIndex.
	V2WatchHistory int `mapstructure:"v2-watch-history"`
	// V2GuestUser is a v3 user whose rights anonymous v2 requests get.
	V2GuestUser string `mapstructure:"v2-guest-user"`
	// V2GuestPassword is V2GuestUser's password (prefer the environment
	// variable ETCDSHIM_V2_GUEST_PASSWORD to a flag).
	V2GuestPassword string `mapstructure:"v2-guest-password"`
	// V2ReadCacheMaxBytes bounds the v2 read cache (0: no cache, every v2
	// GET goes to the member).
	V2ReadCacheMaxBytes int64 `mapstructure:"v2-read-cache-max-bytes"`
	// User is the shim's own v3 identity with auth on, as etcdctl's --user:
	// "name" or "name:password". It runs the v2 follower's upstream watch
	// (needs read on the v2 keyspace, <v2-prefix>/), the v2 cluster reads
	// 3.4 answers anyone, the pool's Status calls that learn the leader and
	// a drain's MoveLeader (needs the root role); see docs/v2.md. It is
	// never used for a client's request.
	User string `mapstructure:"user"`
	// Password is User's password when User has none (prefer the
	// environment variable ETCDSHIM_PASSWORD to a flag).
	Password string `mapstructure:"password"`
	// V2RequestTimeout bounds one v2 request's calls to the member (keys
	// writes, members, auth; reads too unless the read cache answers), as
	// 3.4's one request timeout bounds all its v2 handlers.
	V2RequestTimeout time.Duration `mapstructure:"v2-request-timeout"`
	// V2TokenCacheSize bounds the v2 credential → v3 token cache.
	V2TokenCacheSize int `mapstructure:"v2-token-cache-size"`
	// V2MemberShimURLs maps a member name or member client URL to that
	// member's shim URLs, for /v2/members and /v2/machines ("name=url|url,...").
	V2MemberShimURLs map[string]string `mapstructure:"v2-member-shim-urls"`

	// GCHeadroomBytes is the least the heap may grow between two garbage
	// collections (0: Go's default, GOGC=100); see internal/gctune. An
	// explicit GOGC in the environment overrides it.
	GCHeadroomBytes int64 `mapstructure:"gc-headroom-bytes"`

	// EnablePprof serves Go's runtime profiles at /debug/pprof/, as etcd's
	// --enable-pprof (off: they expose internals); DebugAccess says who may
	// read them on the client listeners.
	EnablePprof bool `mapstructure:"enable-pprof"`

	// Protections against hostile clients (see SECURITY.md).
	// HostWhitelist is etcd's --host-whitelist for what the shim answers
	// itself: plain-HTTP requests whose Host is not listed get 421 ("*" or
	// empty: any host).
	HostWhitelist []string `mapstructure:"host-whitelist"`
	// CORS is etcd's --cors: the origins whose browsers may read the shim's
	// answers ("*" or empty: any origin).
	CORS []string `mapstructure:"cors"`
	// DebugAccess says who may read /debug/legacy and /debug/pprof on the
	// client listeners: loopback (clients on 127.0.0.0/8 or ::1), all, or
	// none. The --listen-metrics-urls listeners always serve them.
	DebugAccess string `mapstructure:"debug-access"`
	// ResponseWriteTimeout bounds how long one write of a started response
	// may wait for a client that does not read (0: no bound). A long poll
	// that is still waiting writes nothing and is not affected.
	ResponseWriteTimeout time.Duration `mapstructure:"response-write-timeout"`
	// V2MaxKeyDepth bounds the number of path components of a v2 key.
	V2MaxKeyDepth int `mapstructure:"v2-max-key-depth"`
	// V2MaxKeyBytes bounds the length of a v2 key.
	V2MaxKeyBytes int `mapstructure:"v2-max-key-bytes"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		ListenClientURLs:      []string{"http://127.0.0.1:2379"},
		HealthInterval:        time.Second,
		HealthTimeout:         time.Second,
		DialTimeout:           2 * time.Second,
		ShutdownTimeout:       10 * time.Second,
		FailbackWindow:        30 * time.Second,
		DrainTimeout:          30 * time.Second,
		LogLevel:              "info",
		EmbeddedDataDir:       "./etcdshim.etcd",
		GatewayLegacyPrefixes: []string{"/v3beta", "/v3alpha"},
		GatewayLegacyMode:     "rewrite",
		// etcd's default --max-request-bytes is 1.5 MiB; JSON (base64) and the
		// envelope need room on top.
		MaxRequestBytes:  3 * 1024 * 1024,
		MetricsTimeout:   5 * time.Second,
		LegacyClientsMax: 1000,
		V2WatchHistory:   1000,
		V2TokenCacheSize: 1024,
		// 3.4's request timeout is 5 s plus two election timeouts (7 s with
		// etcd's defaults); a write without quorum fails after it.
		V2RequestTimeout: 10 * time.Second,
		// The v2 keyspaces of 3.x deployments lived in the member's memory;
		// a cache this size holds about 300,000 small keys.
		V2ReadCacheMaxBytes: 64 * 1024 * 1024,
		// With a live heap of a few MiB, Go's default collected 30 times a
		// second under load; see BENCHMARKS.md for what 8 MiB buys.
		GCHeadroomBytes: 8 * 1024 * 1024,
		// etcd 3.4's defaults: every host, every origin.
		HostWhitelist:        []string{"*"},
		CORS:                 []string{"*"},
		DebugAccess:          "loopback",
		ResponseWriteTimeout: 30 * time.Second,
		V2MaxKeyDepth:        512,
		V2MaxKeyBytes:        64 << 10,
	}
}
