package upgrade

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/internal/waitfor"
)

// TestPrestopWithAuth: with auth on, a 3.7 member answers Status only to an
// authenticated user and MoveLeader only to one with the root role. The
// preStop hook (GET /prestop) on the leader's shim moves leadership away
// when the shim's --user has the root role; without --user, or with a user
// without it, the drain still completes and the answer says why leadership
// stayed (leaderError), leaving the transfer to etcd's own graceful stop.
func TestPrestopWithAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	cl := harness.StartCluster(t, harness.ClusterConfig{Version: "3.7", Size: 3})
	urls := cl.ClientURLs()
	ctx := context.Background()
	admin := harness.Client(t, urls)
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "shim", "shimpw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "shim", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "reader", "readerpw"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("setting up auth: %v", err)
		}
	}
	root := harness.Client(t, urls, harness.WithUser("root", "rootpw"))
	leader := func() (int, uint64) { return cl.LeaderStatus(t, root) }

	for _, tc := range []struct {
		name string
		args []string
		env  []string
		// moved: leadership moves; else leaderError contains refusal.
		moved   bool
		refusal string
	}{
		{name: "no --user", refusal: "user name is empty"},
		{name: "--user without the root role", args: []string{"--user", "reader:readerpw"}, refusal: "permission denied"},
		{name: "--user with the root role", args: []string{"--user", "shim"}, env: []string{"ETCDSHIM_PASSWORD=shimpw"}, moved: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, lid := leader()
			eps := cl.SidecarEndpoints(l)
			adminURL := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
			shim := harness.StartShim(t, harness.ShimConfig{Endpoints: eps, Env: tc.env, Args: append([]string{
				"--health-interval", "250ms", "--listen-admin-url", adminURL}, tc.args...)})
			defer shim.Stop(t)

			rep, err := harness.PreStop(adminURL)
			if err != nil {
				t.Fatalf("GET /prestop: %v, %+v", err, rep)
			}
			_, now := leader()
			if tc.moved {
				if rep.LeaderError != "" || rep.LeaderMovedTo != fmt.Sprintf("%x", now) || now == lid {
					t.Fatalf("leadership: was %x, now %x; the shim answered %+v", lid, now, rep)
				}
			} else if now != lid || rep.LeaderMovedTo != "" || !strings.Contains(rep.LeaderError, tc.refusal) {
				t.Fatalf("leadership: was %x, now %x; the shim answered %+v, want leaderError with %q", lid, now, rep, tc.refusal)
			}
			_, _ = harness.Undrain(adminURL)
		})
	}

	// With auth on, the shims learn the leader (Status) as their --user too,
	// so their own writes go to it: during a move it refuses them in the
	// clear and they are sent again, where a follower would have forwarded
	// them to be dropped silently (upstream/leader.go). v2 writers through
	// every shim see no failure over a few moves.
	t.Run("v2 writes through every shim during the moves", func(t *testing.T) {
		var shims []*harness.Shim
		var admins []string
		for i := range urls {
			eps := cl.SidecarEndpoints(i)
			a := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
			admins = append(admins, a)
			shims = append(shims, harness.StartShim(t, harness.ShimConfig{Endpoints: eps, Env: []string{"ETCDSHIM_PASSWORD=shimpw"},
				Args: []string{"--health-interval", "250ms", "--listen-admin-url", a, "--failback-window", "500ms", "--user", "shim"}}))
		}
		wctx, stop := context.WithCancel(ctx)
		var mu sync.Mutex
		acked, failures := 0, map[string]int{}
		var wg sync.WaitGroup
		for i, s := range shims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 15 * time.Second}
				for n := 0; wctx.Err() == nil; n++ {
					req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v2/keys/auth/%d", s.URL, i), strings.NewReader(fmt.Sprintf("value=%d", n)))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth("root", "rootpw")
					resp, err := client.Do(req)
					mu.Lock()
					switch {
					case err != nil:
						failures[err.Error()]++
					case resp.StatusCode >= 300:
						b, _ := io.ReadAll(resp.Body)
						failures[fmt.Sprintf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(b)))]++
					default:
						acked++
					}
					mu.Unlock()
					if resp != nil {
						resp.Body.Close()
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
		const moves = 5
		for n := 0; n < moves; n++ {
			time.Sleep(time.Second)
			l, lid := leader()
			rep, err := harness.Drain(admins[l])
			if err != nil || rep.LeaderMovedTo == "" {
				t.Fatalf("drain of the leader's shim: %v %+v", err, rep)
			}
			if _, now := leader(); now == lid {
				t.Fatalf("leadership stayed on %x", lid)
			}
			_, _ = harness.Undrain(admins[l])
		}
		// Each writer ends after its request in flight, which waits out
		// the request timeout if the last move dropped it.
		stop()
		waitfor.Group(t, &wg, time.Minute, "the v2 writers")
		t.Logf("%d v2 writes acknowledged over %d moves", acked, moves)
		if len(failures) > 0 || acked == 0 {
			t.Fatalf("v2 writes through the shims failed during the moves: %v (%d acknowledged)", failures, acked)
		}
	})
}
