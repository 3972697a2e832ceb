package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/e2e/harness"
)

// runShimOnce runs the built binary with args and env until it exits and
// returns its stderr lines and exit status.
func runShimOnce(t *testing.T, env []string, args ...string) ([]string, int) {
	t.Helper()
	_, stderr, code := harness.RunShim(t, env, args...)
	out := strings.TrimRight(stderr, "\n")
	if out == "" {
		return nil, code
	}
	return strings.Split(out, "\n"), code
}

// TestConfigErrors: every form of invalid configuration is reported one
// line per problem, naming where the value was given and the value, with
// exit status 2; a port in use is one line and exit status 1.
func TestConfigErrors(t *testing.T) {
	e2eSerial(t)
	dead := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
	listen := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
	base := []string{"--endpoints", dead, "--listen-client-urls", listen}
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badValue := file("bad-value.yaml", "legacy-clients-max: lots\n")
	unknownKey := file("unknown-key.yaml", "health-interval: 2s\nhealth-intervall: 3s\n")
	twoBad := file("two-bad.yaml", "health-interval: banana\nlegacy-clients-max: lots\n")

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyURL := "http://" + busy.Addr().String()

	tests := []struct {
		name string
		env  []string
		args []string
		want []string
		code int
	}{
		{
			name: "bad flag value",
			args: append([]string{"--health-interval", "banana"}, base...),
			want: []string{`etcdshim: invalid --health-interval "banana": want a duration such as 1s, 500ms or 2m`},
			code: 2,
		},
		{
			name: "bad flag value found by validation",
			args: append([]string{"--log-level", "loud"}, base...),
			want: []string{`etcdshim: invalid --log-level "loud": want one of debug, info, warn, error`},
			code: 2,
		},
		{
			name: "bad environment value",
			env:  []string{"ETCDSHIM_HEALTH_INTERVAL=banana"},
			args: base,
			want: []string{`etcdshim: invalid ETCDSHIM_HEALTH_INTERVAL "banana": want a duration such as 1s, 500ms or 2m`},
			code: 2,
		},
		{
			name: "bad file value",
			args: append([]string{"--config-file", badValue}, base...),
			want: []string{`etcdshim: invalid legacy-clients-max "lots" in ` + badValue + `: want a whole number`},
			code: 2,
		},
		{
			name: "unknown file key",
			args: append([]string{"--config-file", unknownKey}, base...),
			want: []string{`etcdshim: unknown key "health-intervall" in ` + unknownKey + `: not a setting (see etcdshim --help for the settings)`},
			code: 2,
		},
		{
			name: "two errors at once",
			args: append([]string{"--config-file", twoBad}, base...),
			want: []string{
				`etcdshim: invalid health-interval "banana" in ` + twoBad + `: want a duration such as 1s, 500ms or 2m`,
				`etcdshim: invalid legacy-clients-max "lots" in ` + twoBad + `: want a whole number`,
			},
			code: 2,
		},
		{
			name: "two errors from two sources",
			env:  []string{"ETCDSHIM_V2_WATCH_HISTORY=0"},
			args: append([]string{"--gateway-legacy-mode", "sideways"}, base...),
			want: []string{
				`etcdshim: invalid --gateway-legacy-mode "sideways": want one of rewrite, redirect, off`,
				`etcdshim: invalid ETCDSHIM_V2_WATCH_HISTORY "0": must be positive`,
			},
			code: 2,
		},
		{
			// The members are not reachable either: before the listeners
			// were bound first, the pool's and the v2 watch's warnings
			// about them came before the real error.
			name: "port in use",
			args: []string{"--endpoints", dead, "--listen-client-urls", busyURL},
			want: []string{fmt.Sprintf("etcdshim: listening on %s: listen tcp %s: bind: address already in use", busyURL, busy.Addr())},
			code: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, code := runShimOnce(t, tt.env, tt.args...)
			if code != tt.code || strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", code, strings.Join(got, "\n"), tt.code, strings.Join(tt.want, "\n"))
			}
		})
	}
}
