package upstream

import (
	"regexp"
	"strings"
	"time"

	"github.com/etcdshim/etcdshim/internal/redact"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NoMemberReason is what every surface answers when no member can serve a
// request: the cause of a v2 error 300, the gateway's 503 JSON error, the
// body of a pass-through 503 and the start of /health's reason. It is the
// text internal/redact gives clients for any member failure, and names no
// address; /health adds each member's own cause.
const NoMemberReason = redact.Unavailable

// NoMemberWait is the longest a call waits for a member when the member it
// was sent to turned out unreachable and no other is healthy: a member that
// restarts or a probe round in progress gets this long to answer before the
// call fails with NoMemberReason. A call that arrives while the pool already
// knows no member is healthy is tried once and fails at once. (Before, the
// retry rounds kept such a call for about 6 s, longer than etcdctl v2 waits
// for a response header.)
const NoMemberWait = 500 * time.Millisecond

// errNoMember is the gRPC status the picker returns with NoMemberReason.
var errNoMember = status.Error(codes.Unavailable, NoMemberReason)

// UnavailableReason is NoMemberReason with each unhealthy member's own
// cause, once per member: what /health answers when no member answers.
func (p *Pool) UnavailableReason() string {
	if causes := p.memberCauses(); causes != "" {
		return NoMemberReason + ": " + causes
	}
	return NoMemberReason
}

// memberCauses lists each member with the plain cause of its last failed
// probe or call, in the order of preference: "http://10.0.0.1:2379:
// connection refused; http://10.0.0.2:2379: i/o timeout".
func (p *Pool) memberCauses() string {
	var parts []string
	for _, ep := range p.eps {
		if ep.healthy.Load() {
			continue
		}
		cause := "not answering"
		if s := ep.lastErr.Load(); s != nil {
			cause = plainCause(*s)
		}
		parts = append(parts, ep.url.String()+": "+cause)
	}
	return strings.Join(parts, "; ")
}

// causePrefixes wrap a connection failure's cause in gRPC's and the pool's
// texts; plainCause strips them.
var causePrefixes = []string{
	"call failed: ", "stream failed: ", "dial failed: ", "rpc error: ",
	"code = Unavailable desc = ", "code = DeadlineExceeded desc = ",
	"last connection error: ", "connection error: desc = ",
	"transport: Error while dialing: ", "transport: authentication handshake failed: ",
}

// dialPrefix is net's "dial tcp 10.0.0.1:2379: " (the address is shown
// with the member already) and the "connect: " of a refused connection.
var dialPrefix = regexp.MustCompile(`^dial (tcp|tcp4|tcp6|unix) [^ ]+: (connect: )?`)

// plainCause reduces a member's failure to its cause: "connection refused"
// rather than gRPC's `connection error: desc = "transport: Error while
// dialing: dial tcp 127.0.0.1:1: connect: connection refused"`.
func plainCause(s string) string {
	for changed := true; changed; {
		changed = false
		s = strings.Trim(s, `" `)
		for _, p := range causePrefixes {
			if strings.HasPrefix(s, p) {
				s, changed = s[len(p):], true
			}
		}
		if loc := dialPrefix.FindStringIndex(s); loc != nil {
			s, changed = s[loc[1]:], true
		}
	}
	if s == "" {
		return "not answering"
	}
	return s
}
