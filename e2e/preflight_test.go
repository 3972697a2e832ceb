package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/migrate/preflight"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// runPreflight runs `etcdshim preflight … --output json` (the built binary)
// and returns the decoded report and the exit status.
func runPreflight(t *testing.T, args ...string) (preflight.Report, int) {
	t.Helper()
	out, code := runPreflightRaw(t, append(args, "--output", "json")...)
	var r preflight.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("preflight --output json is not one JSON document: %v\n%s", err, out)
	}
	return r, code
}

func runPreflightRaw(t *testing.T, args ...string) (string, int) {
	t.Helper()
	stdout, stderr, code := harness.RunShim(t, nil, append([]string{"preflight"}, args...)...)
	t.Logf("preflight %s → exit %d; stderr: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr))
	return stdout, code
}

// expectCheck fails unless the named check has the status and mentions want
// (in its detail or remedy).
func expectCheck(t *testing.T, r preflight.Report, name string, status preflight.Status, want string) {
	t.Helper()
	c := r.Check(name)
	if c == nil {
		t.Fatalf("no %s check in %+v", name, r.Checks)
	}
	if c.Status != status || !strings.Contains(c.Detail+" "+c.Remedy, want) {
		t.Fatalf("%s: %s %q (remedy %q); want %s mentioning %q", name, c.Status, c.Detail, c.Remedy, status, want)
	}
}

func expectVerdict(t *testing.T, r preflight.Report, code int, verdict preflight.Status, wantCode int) {
	t.Helper()
	if r.Verdict != verdict || code != wantCode {
		t.Fatalf("verdict %s exit %d, want %s exit %d; checks: %+v", r.Verdict, code, verdict, wantCode, r.Checks)
	}
}

// memberByName finds the cluster member the report names.
func memberByName(t *testing.T, cl *harness.Cluster, name string) *harness.Member {
	t.Helper()
	for _, m := range cl.Members {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no member %q", name)
	return nil
}

// isLeader reads etcd_server_is_leader from the member itself, as the
// upgrade guide does, to check the report's leader independently.
func isLeader(t *testing.T, m *harness.Member) bool {
	t.Helper()
	resp, err := http.Get(m.ClientURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return strings.Contains(b.String(), "\netcd_server_is_leader 1\n")
}

// upgradeOrder is the members the plan upgrades, in order.
func upgradeOrder(r preflight.Report) []string {
	var out []string
	for _, s := range r.Plan {
		if s.Action == "upgrade" {
			out = append(out, s.Member)
		}
	}
	return out
}

// TestPreflight runs `etcdshim preflight` against real clusters: a 3.4
// cluster (healthy, then mid-upgrade to 3.5, then with a member down, and
// with a shim that served a v2 client), a 3.5 cluster (healthy, then with an
// alarm) and a 3.5 cluster holding v2 data.
func TestPreflight(t *testing.T) {
	e2eSerial(t)
	t.Run("3.4", func(t *testing.T) {
		cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.4", Size: 3})
		eps := cl.Endpoints()

		t.Run("target 3.5 ok, leader last", func(t *testing.T) {
			r, code := runPreflight(t, "--endpoints", eps, "--target", "3.5")
			expectVerdict(t, r, code, preflight.StatusOK, 0)
			expectCheck(t, r, "health", preflight.StatusOK, "all 3 members")
			expectCheck(t, r, "version-path", preflight.StatusOK, "3.5 is the next minor")
			expectCheck(t, r, "leader", preflight.StatusOK, "v3 Status agrees")
			expectCheck(t, r, "v2-data", preflight.StatusOK, "could not be checked over the network")
			if !isLeader(t, memberByName(t, cl, r.Leader)) {
				t.Fatalf("report names %s as leader; its /metrics disagrees", r.Leader)
			}
			order := upgradeOrder(r)
			if len(order) != 3 || order[2] != r.Leader {
				t.Fatalf("plan upgrades %v; want three members, leader %s last", order, r.Leader)
			}
			if r.Plan[0].Action != "snapshot" || !strings.Contains(r.Plan[0].Command, memberByName(t, cl, r.Leader).ClientURL+" snapshot save") {
				t.Fatalf("first step %+v is not a snapshot from the leader", r.Plan[0])
			}
			// The text rendering says the same.
			text, code := runPreflightRaw(t, "--endpoints", eps, "--target", "3.5")
			if code != 0 || !strings.Contains(text, "Verdict: OK") || !strings.Contains(text, "(leader, last) stop "+r.Leader) {
				t.Fatalf("text report (exit %d):\n%s", code, text)
			}
		})

		t.Run("target 3.6 blocked by the version path", func(t *testing.T) {
			r, code := runPreflight(t, "--endpoints", eps, "--target", "3.6")
			expectVerdict(t, r, code, preflight.StatusBlocker, 1)
			expectCheck(t, r, "version-path", preflight.StatusBlocker, "upgrade to 3.5 first")
		})

		t.Run("invalid flags exit 2", func(t *testing.T) {
			for _, args := range [][]string{{"--endpoints", eps, "--target", "three"}, {"--target", "3.5"}, {"--endpoints", eps, "--target", "3.5", "--output", "yaml"}} {
				if _, code := runPreflightRaw(t, args...); code != 2 {
					t.Fatalf("preflight %v: exit %d, want 2", args, code)
				}
			}
		})

		t.Run("legacy clients seen by a shim", func(t *testing.T) {
			shim := harness.StartShim(t, harness.ShimConfig{Endpoints: cl.ClientURLs()})
			req, _ := http.NewRequest(http.MethodGet, shim.URL+"/v2/keys/?recursive=true", nil)
			req.Header.Set("User-Agent", "preflight-e2e-v2client/1.0")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("v2 GET through the shim: %s", resp.Status)
			}
			r, code := runPreflight(t, "--endpoints", eps, "--target", "3.5", "--shims", shim.URL)
			// Information, not a blocker: the shim keeps serving the client.
			expectVerdict(t, r, code, preflight.StatusWarn, 0)
			expectCheck(t, r, "legacy-clients", preflight.StatusWarn, `"preflight-e2e-v2client/1.0"`)
			expectCheck(t, r, "legacy-clients", preflight.StatusWarn, "v2: 1 client, 1 request")
		})

		// One follower restarted on 3.5: the upgrade to 3.5 is in progress.
		r, _ := runPreflight(t, "--endpoints", eps, "--target", "3.5")
		var upgraded string
		for _, m := range cl.Members {
			if m.Name != r.Leader {
				m.Restart(t, "3.5")
				upgraded = m.Name
				break
			}
		}

		t.Run("mixed: target 3.5 in progress, proceed", func(t *testing.T) {
			r, code := runPreflight(t, "--endpoints", eps, "--target", "3.5")
			expectVerdict(t, r, code, preflight.StatusWarn, 0)
			expectCheck(t, r, "version-path", preflight.StatusWarn, "in progress")
			order := upgradeOrder(r)
			if len(order) != 2 || order[1] != r.Leader || strings.Contains(strings.Join(order, ","), upgraded) {
				t.Fatalf("plan upgrades %v; want the two 3.4 members, leader %s last, not %s", order, r.Leader, upgraded)
			}
		})

		t.Run("mixed: target 3.6 blocked", func(t *testing.T) {
			r, code := runPreflight(t, "--endpoints", eps, "--target", "3.6")
			expectVerdict(t, r, code, preflight.StatusBlocker, 1)
			expectCheck(t, r, "version-path", preflight.StatusBlocker, "finish the upgrade to 3.5 first")
		})

		t.Run("member down", func(t *testing.T) {
			var down *harness.Member
			for _, m := range cl.Members {
				if m.Name != r.Leader && m.Name != upgraded {
					down = m
				}
			}
			down.Kill(t)
			r, code := runPreflight(t, "--endpoints", eps, "--target", "3.5")
			expectVerdict(t, r, code, preflight.StatusBlocker, 1)
			expectCheck(t, r, "health", preflight.StatusBlocker, down.Name+" ("+down.ClientURL+") is unreachable")
		})
	})

	t.Run("3.5", func(t *testing.T) {
		cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.5", Size: 1})
		eps := cl.Endpoints()

		t.Run("target 3.6 ok without v2 data", func(t *testing.T) {
			r, code := runPreflight(t, "--endpoints", eps, "--target", "3.6")
			expectVerdict(t, r, code, preflight.StatusOK, 0)
			expectCheck(t, r, "version-path", preflight.StatusOK, "cluster version is 3.5")
			expectCheck(t, r, "v2-data", preflight.StatusOK, "etcdutl check v2store")
			expectCheck(t, r, "v2-wal", preflight.StatusOK, "--snapshot-count")
			if got := upgradeOrder(r); len(got) != 1 || got[0] != "m0" {
				t.Fatalf("plan upgrades %v", got)
			}
		})

		t.Run("alarm", func(t *testing.T) {
			cli, err := clientv3.New(clientv3.Config{Endpoints: cl.ClientURLs(), DialTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := cli.Status(ctx, cl.Members[0].ClientURL)
			if err != nil {
				t.Fatal(err)
			}
			mc := pb.NewMaintenanceClient(cli.ActiveConnection())
			alarm := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: st.Header.MemberId, Alarm: pb.AlarmType_NOSPACE}
			if _, err := mc.Alarm(ctx, alarm); err != nil {
				t.Fatalf("raising NOSPACE: %v", err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				alarm.Action = pb.AlarmRequest_DEACTIVATE
				_, _ = mc.Alarm(ctx, alarm)
			})
			r, code := runPreflight(t, "--endpoints", eps, "--target", "3.6")
			expectVerdict(t, r, code, preflight.StatusBlocker, 1)
			expectCheck(t, r, "alarms", preflight.StatusBlocker, "NOSPACE on m0")
		})
	})

	t.Run("3.5 with v2 data", func(t *testing.T) {
		cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.5", Size: 1, EnableV2: true})
		if out, err := harness.Etcdctl(t, []string{"ETCDCTL_API=2"}, "--endpoints", cl.Members[0].ClientURL, "set", "/legacy/key", "value"); err != nil {
			t.Fatalf("etcdctl v2 set: %v\n%s", err, out)
		}
		r, code := runPreflight(t, "--endpoints", cl.Endpoints(), "--target", "3.6")
		expectVerdict(t, r, code, preflight.StatusBlocker, 1)
		expectCheck(t, r, "v2-data", preflight.StatusBlocker, "detected disallowed custom content in v2store")
		expectCheck(t, r, "v2-data", preflight.StatusBlocker, "etcdshim v2 import")
		expectCheck(t, r, "v2-data", preflight.StatusBlocker, "/legacy/")
		expectCheck(t, r, "v2-wal", preflight.StatusWarn, "v2 API is on")
	})
}
