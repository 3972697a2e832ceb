package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrNoUpstream means no member answered at all, as opposed to a member that
// answered and is unhealthy.
var ErrNoUpstream = errors.New("no upstream member answered")

// healthKey is read linearizably to prove the member can reach quorum, as
// etcd's own /health does with a quorum GET.
const healthKey = "health"

// CheckHealth judges the member requests go to now as etcd 3.4's /health
// does: nil when it has a leader, no active alarm (but those named in
// exclude, e.g. NOSPACE) and a quorum read succeeds; an error wrapping
// ErrNoUpstream when no member answers at all. It is computed over v3
// rather than copied from the member's /health, whose body differs between
// releases.
func (p *Pool) CheckHealth(ctx context.Context, exclude []string) error {
	cc := p.ClientConn()
	st, err := etcdrpc.NewMaintenanceClient(cc).Status(ctx, &pb.StatusRequest{})
	if err != nil {
		if status.Code(err) == codes.Unavailable || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: %v", ErrNoUpstream, err)
		}
		if isAuthError(err) {
			// With auth on, etcd answers Status and the alarm list only to
			// an authenticated user, and the shim sends no client's
			// credentials: ask the member's own /health, which checks the
			// same things without them.
			return p.memberHealth(ctx, exclude)
		}
		return fmt.Errorf("status: %w", err)
	}
	if st.Leader == 0 {
		return errors.New("member has no leader")
	}
	alarms, err := etcdrpc.NewMaintenanceClient(cc).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	if err != nil && !isAuthError(err) {
		return fmt.Errorf("alarm list: %w", err)
	}
	for _, a := range alarms.GetAlarms() {
		if excluded(a.Alarm.String(), exclude) {
			continue
		}
		return fmt.Errorf("alarm %s active", a.Alarm)
	}
	_, err = etcdrpc.NewKVClient(cc).Range(ctx, &pb.RangeRequest{Key: []byte(healthKey), CountOnly: true})
	if err != nil && !isAuthError(err) {
		return fmt.Errorf("quorum read: %w", err)
	}
	return nil
}

// isAuthError: etcd checks permissions after the linearizable read barrier,
// so an auth refusal still proves the member reached quorum.
func isAuthError(err error) bool {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return etcderr.Is(err, rpctypes.ErrGRPCUserEmpty)
}

// memberHealth is the verdict of the current member's own /health.
func (p *Pool) memberHealth(ctx context.Context, exclude []string) error {
	u := *p.Current()
	u.Path = "/health"
	u.RawQuery = url.Values{"exclude": exclude}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("member /health: %w", err)
	}
	resp, err := p.HTTPClient().Do(req)
	if err != nil {
		return fmt.Errorf("%w: member /health: %v", ErrNoUpstream, err)
	}
	defer resp.Body.Close()
	var body struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
	if resp.StatusCode != http.StatusOK || body.Health != "true" {
		return fmt.Errorf("member /health: %d %s", resp.StatusCode, body.Reason)
	}
	return nil
}

func excluded(alarm string, exclude []string) bool {
	for _, e := range exclude {
		if strings.EqualFold(e, alarm) {
			return true
		}
	}
	return false
}
