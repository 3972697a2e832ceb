package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args []string, env map[string]string, yaml string) (Config, []string, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs, Default())
	var file string
	fs.StringVar(&file, "config-file", "", "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if yaml != "" {
		file = filepath.Join(t.TempDir(), "shim.yaml")
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Load(fs, file)
}

func TestLoadSources(t *testing.T) {
	t.Run("flags", func(t *testing.T) {
		c, _, err := load(t, []string{"--endpoints", "http://127.0.0.1:1,http://127.0.0.1:2", "--health-interval", "3s"}, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Endpoints) != 2 || c.Endpoints[1] != "http://127.0.0.1:2" || c.HealthInterval != 3*time.Second {
			t.Fatalf("got %+v", c)
		}
	})
	t.Run("env", func(t *testing.T) {
		c, _, err := load(t, nil, map[string]string{
			"ETCDSHIM_ENDPOINTS":           "http://127.0.0.1:1,http://127.0.0.1:2",
			"ETCDSHIM_GATEWAY_LEGACY_MODE": "redirect",
			"ETCDSHIM_V2_MEMBER_SHIM_URLS": "infra0=http://10.0.0.1:2379",
		}, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Endpoints) != 2 || c.GatewayLegacyMode != "redirect" || c.V2MemberShimURLs["infra0"] != "http://10.0.0.1:2379" {
			t.Fatalf("got %+v", c)
		}
	})
	t.Run("yaml, flags win", func(t *testing.T) {
		c, _, err := load(t, []string{"--log-level", "debug"},
			nil, "endpoints:\n  - http://127.0.0.1:9\nlog-level: warn\nv2-watch-history: 50\n")
		if err != nil {
			t.Fatal(err)
		}
		if c.Endpoints[0] != "http://127.0.0.1:9" || c.LogLevel != "debug" || c.V2WatchHistory != 50 {
			t.Fatalf("got %+v", c)
		}
	})
	t.Run("deprecated ca-file", func(t *testing.T) {
		ca := filepath.Join(t.TempDir(), "ca.pem")
		_ = os.WriteFile(ca, []byte("x"), 0o600)
		c, warnings, err := load(t, []string{"--endpoints", "http://127.0.0.1:1", "--ca-file", ca}, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if c.TrustedCAFile != ca || !c.ClientCertAuth || len(warnings) != 1 || !strings.Contains(warnings[0], "deprecated") {
			t.Fatalf("got %+v %v", c, warnings)
		}
	})
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name string
		args []string
		yaml string
		want string
	}{
		{"no upstream", nil, "", "no upstream"},
		{"embedded and endpoints", []string{"--embedded", "--endpoints", "http://127.0.0.1:1"}, "", "cannot be used together"},
		{"bad endpoint", []string{"--endpoints", "127.0.0.1:2379"}, "", `invalid --endpoints "127.0.0.1:2379": bad URL: first path segment`},
		{"bad listen url", []string{"--endpoints", "http://127.0.0.1:1", "--listen-client-urls", "ftp://x:1"}, "", "scheme must be http or https"},
		{"https without cert", []string{"--endpoints", "http://127.0.0.1:1", "--listen-client-urls", "https://127.0.0.1:1"}, "", "needs --cert-file"},
		{"unreadable cert", []string{"--endpoints", "http://127.0.0.1:1", "--cert-file", "/nonexistent", "--key-file", "/nonexistent"}, "", "not readable"},
		{"unknown yaml key", nil, "endpoints: [http://127.0.0.1:1]\nno-such-key: 1\n", "no-such-key"},
		{"bad mode", []string{"--endpoints", "http://127.0.0.1:1", "--gateway-legacy-mode", "sideways"}, "", "rewrite, redirect, off"},
		{"bad log level", []string{"--endpoints", "http://127.0.0.1:1", "--log-level", "loud"}, "", "--log-level"},
		{"bad v2 prefix", []string{"--endpoints", "http://127.0.0.1:1", "--v2-prefix", "v2/"}, "", "--v2-prefix"},
		{"negative gc headroom", []string{"--endpoints", "http://127.0.0.1:1", "--gc-headroom-bytes", "-1"}, "", "--gc-headroom-bytes"},
		{"no v2 request timeout", []string{"--endpoints", "http://127.0.0.1:1", "--v2-request-timeout", "0s"}, "", `invalid --v2-request-timeout "0s": must be a positive duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, tt.args, nil, tt.yaml)
			if err == nil || !IsInvalid(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a config error containing %q", err, tt.want)
			}
			for _, line := range err.(*Error).Lines() {
				if strings.Contains(line, "\n") {
					t.Fatalf("a problem takes more than one line: %q", line)
				}
			}
		})
	}
}

// The shipped example must stay loadable.
func TestShippedExampleConfigLoads(t *testing.T) {
	c, _, err := load(t, []string{"--config-file", "../configs/etcdshim.yaml"}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Endpoints) != 3 || c.ListenClientURLs[0] != "http://0.0.0.0:2379" || c.GCHeadroomBytes != Default().GCHeadroomBytes {
		t.Fatalf("got %+v", c)
	}
}

// Each invalid value is named where it was given, with the value, one
// problem per line, all of them at once.
func TestLoadProblemsNameTheirSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shim.yaml")
	if err := os.WriteFile(file, []byte("endpoints: [http://127.0.0.1:1]\nv2-watch-history: many\nno-such-key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := load(t, []string{"--config-file", file, "--log-level", "loud"},
		map[string]string{"ETCDSHIM_HEALTH_INTERVAL": "banana"}, "")
	if err == nil || !IsInvalid(err) {
		t.Fatalf("got %v, want a config error", err)
	}
	got := err.(*Error).Lines()
	want := []string{
		`invalid ETCDSHIM_HEALTH_INTERVAL "banana": want a duration such as 1s, 500ms or 2m`,
		`invalid v2-watch-history "many" in ` + file + `: want a whole number`,
		`unknown key "no-such-key" in ` + file + `: not a setting (see etcdshim --help for the settings)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// With the values decoded, Validate's problems are named the same way.
	_, _, err = load(t, []string{"--log-level", "loud"}, map[string]string{"ETCDSHIM_HEALTH_INTERVAL": ""},
		"endpoints: [http://127.0.0.1:1]\ngateway-legacy-mode: sideways\n")
	if err == nil {
		t.Fatal("no error")
	}
	got = err.(*Error).Lines()
	if len(got) != 2 || got[0] != `invalid --log-level "loud": want one of debug, info, warn, error` ||
		!strings.HasPrefix(got[1], `invalid gateway-legacy-mode "sideways" in `) {
		t.Fatalf("got %q", got)
	}
}
