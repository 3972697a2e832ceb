package preflight

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/etcdshim/etcdshim/metricsalias"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Options says where to look. Endpoints are the members' own client URLs
// (behind the shims); Shims are the shims' client URLs.
type Options struct {
	Endpoints []string
	Shims     []string
	// TLS is used towards members and shims (nil: plain http, or the
	// system roots for https).
	TLS *tls.Config
	// DialTimeout bounds one connection; RequestTimeout one request.
	DialTimeout    time.Duration
	RequestTimeout time.Duration
	Logger         *zap.Logger
}

// Run collects the facts and evaluates them.
func Run(ctx context.Context, target Version, o Options) (*Report, error) {
	f, err := Collect(ctx, o)
	if err != nil {
		return nil, err
	}
	return Evaluate(target, f), nil
}

// Collect asks every member and shim what Evaluate needs. Failures to reach a
// member or shim are facts, not errors; the error is for a cancelled context.
func Collect(ctx context.Context, o Options) (Facts, error) {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	hc := &http.Client{
		Timeout: o.RequestTimeout,
		Transport: &http.Transport{
			DialContext:     (&net.Dialer{Timeout: o.DialTimeout}).DialContext,
			TLSClientConfig: o.TLS,
			// One short-lived run: no idle pool worth keeping.
			DisableKeepAlives: true,
		},
	}
	f := Facts{Members: make([]MemberFacts, len(o.Endpoints)), Shims: make([]ShimFacts, len(o.Shims))}
	var wg sync.WaitGroup
	for i, ep := range o.Endpoints {
		wg.Go(func() { f.Members[i] = probeMember(ctx, hc, strings.TrimRight(ep, "/")) })
	}
	for i, s := range o.Shims {
		wg.Go(func() { f.Shims[i] = probeShim(ctx, hc, strings.TrimRight(s, "/")) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return f, fmt.Errorf("preflight: %w", err)
	}
	collectV3(ctx, o, &f)
	return f, nil
}

// getJSON GETs url and decodes a JSON body into v whatever the status (etcd
// answers /health 503 with a JSON body); it returns the status.
func getJSON(ctx context.Context, hc *http.Client, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "etcdshim-preflight")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: reading: %w", url, err)
	}
	if v != nil && resp.StatusCode != http.StatusNotFound {
		if err := json.Unmarshal(body, v); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: HTTP %d, not JSON: %w", url, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

func probeMember(ctx context.Context, hc *http.Client, ep string) MemberFacts {
	m := MemberFacts{Endpoint: ep}
	var health struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if _, err := getJSON(ctx, hc, ep+"/health", &health); err != nil {
		m.Err = shortErr(err)
		return m
	}
	m.Healthy, m.HealthReason = health.Health == "true", health.Reason
	var ver struct {
		Server  string `json:"etcdserver"`
		Cluster string `json:"etcdcluster"`
	}
	if _, err := getJSON(ctx, hc, ep+"/version", &ver); err == nil {
		m.Server, m.Cluster = ver.Server, ver.Cluster
	}
	probeMetrics(ctx, hc, ep, &m)
	m.V2 = probeV2(ctx, hc, ep)
	return m
}

// probeMetrics reads the two series it needs from the text exposition.
func probeMetrics(ctx context.Context, hc *http.Client, ep string, m *MemberFacts) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/metrics", nil)
	if err != nil {
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "etcd_server_is_leader":
			if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
				b := v == 1
				m.MetricsLeader = &b
			}
		case "etcd_debugging_snap_save_total_duration_seconds_count":
			if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
				m.SnapshotsSaved = &v
			}
		}
	}
}

func probeV2(ctx context.Context, hc *http.Client, ep string) V2Facts {
	var v V2Facts
	var keys struct {
		Node struct {
			Nodes []struct {
				Key string `json:"key"`
				Dir bool   `json:"dir"`
			} `json:"nodes"`
		} `json:"node"`
	}
	st, err := getJSON(ctx, hc, ep+"/v2/keys/?recursive=false", &keys)
	v.Status = st
	if err != nil {
		v.Err = shortErr(err)
		return v
	}
	if st != http.StatusOK {
		return v
	}
	for _, n := range keys.Node.Nodes {
		k := n.Key
		if n.Dir {
			k += "/"
		}
		v.Nodes = append(v.Nodes, k)
	}
	// v2 auth lives in the same v2 store and counts as custom content.
	var enabled struct {
		Enabled bool `json:"enabled"`
	}
	if st, err := getJSON(ctx, hc, ep+"/v2/auth/enable", &enabled); err == nil && st == http.StatusOK {
		v.AuthEnabled = enabled.Enabled
	}
	var users struct {
		Users []struct {
			User string `json:"user"`
		} `json:"users"`
	}
	if st, err := getJSON(ctx, hc, ep+"/v2/auth/users", &users); err == nil && st == http.StatusOK {
		for _, u := range users.Users {
			v.Users = append(v.Users, u.User)
		}
	}
	var roles struct {
		Roles []struct {
			Role string `json:"role"`
		} `json:"roles"`
	}
	if st, err := getJSON(ctx, hc, ep+"/v2/auth/roles", &roles); err == nil && st == http.StatusOK {
		for _, r := range roles.Roles {
			if r.Role != "root" { // built in, not stored
				v.Roles = append(v.Roles, r.Role)
			}
		}
	}
	return v
}

func probeShim(ctx context.Context, hc *http.Client, url string) ShimFacts {
	s := ShimFacts{URL: url}
	var body metricsalias.LegacyReport
	st, err := getJSON(ctx, hc, url+"/debug/legacy", &body)
	switch {
	case err != nil:
		s.Err = shortErr(err)
	case st != http.StatusOK:
		s.Err = fmt.Sprintf("HTTP %d (is it an etcdshim?)", st)
	default:
		s.Since, s.Surfaces, s.Clients = body.Since, body.Surfaces, body.Clients
	}
	return s
}

// collectV3 reads membership, alarms and each member's Status over v3, from
// the members that answered HTTP.
func collectV3(ctx context.Context, o Options, f *Facts) {
	var eps []string
	for _, m := range f.Members {
		if m.Reachable() {
			eps = append(eps, m.Endpoint)
		}
	}
	if len(eps) == 0 {
		f.ClusterErr, f.AlarmsErr = "no member reachable", "no member reachable"
		return
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: o.DialTimeout,
		TLS:         o.TLS,
		// The client logs every failed dial; preflight reports them itself.
		Logger: o.Logger.Named("clientv3").WithOptions(zap.IncreaseLevel(zap.ErrorLevel)),
	})
	if err != nil {
		f.ClusterErr, f.AlarmsErr = shortErr(err), shortErr(err)
		return
	}
	defer cli.Close()

	rctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
	ml, err := cli.MemberList(rctx)
	cancel()
	if err != nil {
		f.ClusterErr = shortErr(err)
	} else {
		f.Cluster = []ClusterMember{}
		for _, m := range ml.Members {
			f.Cluster = append(f.Cluster, ClusterMember{Name: m.Name, ID: m.ID, ClientURLs: m.ClientURLs, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner})
		}
	}

	rctx, cancel = context.WithTimeout(ctx, o.RequestTimeout)
	al, err := cli.AlarmList(rctx)
	cancel()
	if err != nil {
		f.AlarmsErr = shortErr(err)
	} else {
		for _, a := range al.Alarms {
			f.Alarms = append(f.Alarms, Alarm{MemberID: a.MemberID, Type: a.Alarm.String()})
		}
	}

	var wg sync.WaitGroup
	for i := range f.Members {
		m := &f.Members[i]
		if !m.Reachable() {
			continue
		}
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
			defer cancel()
			st, err := cli.Status(sctx, m.Endpoint)
			if err != nil {
				o.Logger.Debug("v3 status", zap.String("endpoint", m.Endpoint), zap.Error(err))
				return
			}
			m.StatusMemberID, m.StatusLeaderID = st.Header.MemberId, st.Leader
		})
	}
	wg.Wait()

	for i := range f.Members {
		m := &f.Members[i]
		for _, cm := range f.Cluster {
			match := m.StatusMemberID != 0 && cm.ID == m.StatusMemberID
			for _, u := range cm.ClientURLs {
				match = match || normURL(u) == normURL(m.Endpoint)
			}
			if match {
				m.Name, m.ID = cm.Name, cm.ID
				break
			}
		}
	}
}

// shortErr keeps an error's last, most specific part ("connection
// refused") readable in a one-line report.
func shortErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	s := err.Error()
	if j := strings.Index(s, "dial tcp"); j >= 0 {
		return s[j:] // "dial tcp 127.0.0.1:1: connect: connection refused"
	}
	return s
}
