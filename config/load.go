package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix is the prefix of every environment variable the shim reads.
const EnvPrefix = "ETCDSHIM"

// settingAnnotation marks the flags that are Config settings.
const settingAnnotation = "etcdshim-setting"

// RegisterFlags defines one flag per Config field on fs, with d's values as
// defaults.
func RegisterFlags(fs *pflag.FlagSet, d Config) {
	target := fs
	own := pflag.NewFlagSet("settings", pflag.ContinueOnError)
	defer func() {
		own.VisitAll(func(f *pflag.Flag) {
			f.Annotations = map[string][]string{settingAnnotation: {"true"}}
			target.AddFlag(f)
		})
	}()
	fs = own
	fs.StringSlice("listen-client-urls", d.ListenClientURLs, "URLs to serve clients on (gRPC, JSON gateway, v2, /metrics), http:// or https://")
	fs.StringSlice("listen-metrics-urls", d.ListenMetricsURLs, "extra URLs serving only /metrics, /metrics/shim, /health and the debug pages (/debug/legacy, /debug/pprof)")
	fs.StringSlice("advertise-client-urls", d.AdvertiseClientURLs, "URLs at which clients reach this shim (listed in /v2/members and /v2/machines); default: the listen URLs")
	fs.StringSlice("endpoints", d.Endpoints, "upstream members' client URLs; the first is the sidecar's own member, the rest are fallbacks")
	fs.String("cert-file", d.CertFile, "TLS certificate for the client listeners")
	fs.String("key-file", d.KeyFile, "TLS key for the client listeners")
	fs.String("trusted-ca-file", d.TrustedCAFile, "CA bundle that verifies client certificates")
	fs.Bool("client-cert-auth", d.ClientCertAuth, "require a client certificate signed by --trusted-ca-file")
	fs.String("ca-file", d.CAFile, "DEPRECATED: use --trusted-ca-file (setting it also turns on --client-cert-auth, as in etcd)")
	fs.String("cert", d.UpstreamCert, "client certificate for connections to the upstream members")
	fs.String("key", d.UpstreamKey, "client key for connections to the upstream members")
	fs.String("cacert", d.UpstreamCACert, "CA bundle that verifies the upstream members' certificates")
	fs.Bool("insecure-skip-tls-verify", d.UpstreamInsecureSkipVerify, "do not verify upstream certificates (testing only)")
	fs.Duration("health-interval", d.HealthInterval, "how often each upstream member is probed")
	fs.Duration("health-timeout", d.HealthTimeout, "time limit of one upstream probe")
	fs.Duration("dial-timeout", d.DialTimeout, "time limit of one upstream connection attempt")
	fs.Duration("shutdown-timeout", d.ShutdownTimeout, "how long in-flight requests may finish after SIGINT/SIGTERM")
	fs.String("listen-admin-url", d.ListenAdminURL, "loopback http:// URL serving the admin interface (POST/DELETE /drain for 'etcdshim drain', GET /prestop for preStop hooks); empty: off")
	fs.Duration("failback-window", d.FailbackWindow, "client gRPC connections move back to the preferred member once it recovered, each after a random delay below this")
	fs.Duration("drain-timeout", d.DrainTimeout, "how long a drain (POST /drain, GET /prestop) waits for the member to have nothing in flight")
	fs.String("log-level", d.LogLevel, "debug, info, warn or error")
	fs.Bool("embedded", d.Embedded, "start an in-process etcd and serve in front of it (for trying the shim)")
	fs.String("embedded-data-dir", d.EmbeddedDataDir, "data directory of the embedded etcd")
	fs.StringSlice("gateway-legacy-prefixes", d.GatewayLegacyPrefixes, "legacy JSON gateway prefixes to serve (/v3beta, /v3alpha)")
	fs.String("gateway-legacy-mode", d.GatewayLegacyMode, "rewrite (answer in place), redirect (308 to /v3) or off (404)")
	fs.Int64("max-request-bytes", d.MaxRequestBytes, "largest JSON gateway or v2 request body accepted")
	fs.String("metrics-endpoint", d.MetricsEndpoint, "upstream URL scraped for /metrics (default: first --endpoints URL + /metrics)")
	fs.String("metric-aliases", d.MetricAliases, "YAML metric alias table replacing the built-in one")
	fs.StringSlice("metric-alias-groups", d.MetricAliasGroups, "optional metric alias groups to switch on (doc-typos, etcd2, grpc30); none: every alias off, the default group's too")
	fs.Duration("metrics-timeout", d.MetricsTimeout, "time limit of one upstream scrape")
	fs.Int("legacy-clients-max", d.LegacyClientsMax, "how many legacy clients /debug/legacy remembers")
	fs.String("v2-prefix", d.V2Prefix, "v3 key prefix under which the v2 keyspace lives")
	fs.Int("v2-watch-history", d.V2WatchHistory, "how many v2 events are kept for waitIndex")
	fs.String("v2-guest-user", d.V2GuestUser, "v3 user whose rights anonymous v2 requests get when auth is on")
	fs.String("v2-guest-password", d.V2GuestPassword, "password of --v2-guest-user (better set as ETCDSHIM_V2_GUEST_PASSWORD)")
	fs.Int64("v2-read-cache-max-bytes", d.V2ReadCacheMaxBytes, "memory bound of the v2 read cache for GETs without quorum=true (0: no cache)")
	fs.Duration("v2-request-timeout", d.V2RequestTimeout, "time limit of one v2 request's calls to the member (a write without quorum fails after it)")
	fs.Int("v2-token-cache-size", d.V2TokenCacheSize, "how many v2 credentials' v3 tokens are cached")
	fs.String("user", d.User, "the shim's own v3 user with auth on, username[:password] as etcdctl's: the v2 follower's watch (needs read on the v2 keyspace), /v2/members, /v2/machines and /v2/stats for anyone, learning the leader, and a drain's MoveLeader (needs the root role); never a client's request")
	fs.String("password", d.Password, "password of --user (better set as ETCDSHIM_PASSWORD)")
	fs.Int64("gc-headroom-bytes", d.GCHeadroomBytes, "least heap growth between garbage collections (0: Go's default; GOGC in the environment overrides it)")
	fs.Bool("enable-pprof", d.EnablePprof, "serve runtime profiles at /debug/pprof/ (who may read them: --debug-access)")
	fs.StringSlice("host-whitelist", d.HostWhitelist, "hosts a plain-HTTP request may name in its Host header for what the shim answers itself, as etcd's (\"*\": any)")
	fs.StringSlice("cors", d.CORS, "origins allowed to read the shim's answers from a browser, as etcd's (\"*\": any)")
	fs.String("debug-access", d.DebugAccess, "who may read /debug/legacy and /debug/pprof on the client listeners: loopback, all or none (the --listen-metrics-urls listeners always serve them)")
	fs.Duration("response-write-timeout", d.ResponseWriteTimeout, "longest wait for a client that does not read a started response (0: none)")
	fs.Int("v2-max-key-depth", d.V2MaxKeyDepth, "most path components a v2 key may have")
	fs.Int("v2-max-key-bytes", d.V2MaxKeyBytes, "longest v2 key accepted, in bytes")
	fs.StringToString("v2-member-shim-urls", d.V2MemberShimURLs, "member name or client URL = that member's shim URLs ('|'-separated), for /v2/members")
}

// Load decodes flags, ETCDSHIM_* environment variables and the YAML file
// named by --config-file (in increasing order of precedence: file, env,
// flags set on the command line) into a Config and validates it. The
// returned warnings are for deprecated settings.
func Load(fs *pflag.FlagSet, configFile string) (Config, []string, error) {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	var bindErr error
	fs.VisitAll(func(f *pflag.Flag) {
		// Only settings are bound: --config-file and --help are not keys.
		if f.Annotations[settingAnnotation] == nil || bindErr != nil {
			return
		}
		bindErr = v.BindPFlag(f.Name, f)
	})
	if bindErr != nil {
		return Config{}, nil, fmt.Errorf("binding flags: %w", bindErr)
	}
	if configFile != "" {
		v.SetConfigFile(configFile)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, nil, invalid("cannot read --config-file %s: %s (fix the path or the YAML syntax)", configFile, oneLine(err))
		}
	}
	c, err := decode(v, fs, configFile)
	if err != nil {
		return Config{}, nil, err
	}
	warnings := c.applyDeprecations()
	if err := c.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			for i := range ce.Problems {
				ce.Problems[i].Source = source(v, fs, configFile, ce.Problems[i].Key)
			}
		}
		return Config{}, warnings, err
	}
	return c, warnings, nil
}

// decode fills a Config one setting at a time, so that every invalid value
// is reported (not only the first), each with where it was given, and so
// are the file's keys that are no setting.
func decode(v *viper.Viper, fs *pflag.FlagSet, configFile string) (Config, error) {
	var c Config
	hook := mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		stringToSliceHook,
		stringToMapHook,
	)
	known := map[string]bool{}
	var problems []Problem
	rv := reflect.ValueOf(&c).Elem()
	for i := 0; i < rv.NumField(); i++ {
		key := rv.Type().Field(i).Tag.Get("mapstructure")
		known[key] = true
		raw := v.Get(key)
		if raw == nil {
			continue
		}
		field := rv.Field(i)
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			DecodeHook:       hook,
			WeaklyTypedInput: true,
			Result:           field.Addr().Interface(),
		})
		if err == nil {
			err = dec.Decode(raw)
		}
		if err != nil {
			problems = append(problems, Problem{
				Source: source(v, fs, configFile, key),
				Key:    key,
				Value:  shown(raw),
				Why:    want(typeName(field.Type()), err),
			})
		}
	}
	var unknown []string
	for _, k := range v.AllKeys() {
		top, _, _ := strings.Cut(k, ".")
		if !known[top] && !slices.Contains(unknown, top) {
			unknown = append(unknown, top)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		problems = append(problems, Problem{Source: configFile, Key: k, Unknown: true})
	}
	if len(problems) > 0 {
		return Config{}, &Error{Problems: problems}
	}
	return c, nil
}

// source names where a setting's value came from, in the order Load gives
// them precedence.
func source(v *viper.Viper, fs *pflag.FlagSet, configFile, key string) string {
	if f := fs.Lookup(key); f != nil && f.Changed {
		return "--" + key
	}
	env := EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
	// viper ignores an empty variable, so it is not the source then.
	if val, ok := os.LookupEnv(env); ok && val != "" {
		return env
	}
	if configFile != "" && v.InConfig(key) {
		return key + " in " + configFile
	}
	return "--" + key
}

// shown is a raw value as the user wrote it.
func shown(raw any) string {
	switch r := raw.(type) {
	case string:
		return r
	case []any:
		parts := make([]string, len(r))
		for i, e := range r {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(raw)
}

// typeName is the pflag name of a Config field's type, for want.
func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "duration"
	case t.Kind() == reflect.Map:
		return "stringToString"
	case t.Kind() == reflect.Slice:
		return "stringSlice"
	}
	return t.Kind().String()
}

// stringToSliceHook splits comma-separated environment values ("a,b") into
// slices; flags and YAML lists arrive as slices already.
func stringToSliceHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if s == "" {
		return []string{}, nil
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

// stringToMapHook parses "k=v,k2=v2" environment values into maps.
func stringToMapHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Map {
		return data, nil
	}
	out := map[string]string{}
	s := strings.TrimSpace(data.(string))
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return out, nil
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// applyDeprecations maps deprecated settings onto their replacements.
func (c *Config) applyDeprecations() []string {
	var w []string
	if c.CAFile != "" {
		w = append(w, "--ca-file is deprecated: use --trusted-ca-file; as in etcd, --ca-file also turns on --client-cert-auth")
		if c.TrustedCAFile == "" {
			c.TrustedCAFile = c.CAFile
		}
		c.ClientCertAuth = true
	}
	return w
}
