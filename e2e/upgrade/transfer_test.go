package upgrade

import (
	"strings"
	"testing"
	"time"
)

// What a member answers a write that raft dropped during a leadership
// transfer (go.etcd.io/raft): while the old leader has a transferee it
// refuses every proposal (stepLeader, MsgProp: leadTransferee != None). Its
// own clients get that refusal at once ("raft proposal dropped"; nothing was
// appended); a proposal a follower forwarded to it is dropped without a word
// (a peer's message is stepped without waiting for the result, node.step),
// so the follower answers only when its request timeout ends ("request timed
// out", usually "..., possibly due to previous leader failure"). Members
// without a leader hold proposals until they learn the new one (node.run
// reads no proposal then), so nothing else is lost. Only a member writes
// these texts; the shim's tunnel relays them untouched.
const (
	kindRefused  = "refused by the old leader (raft proposal dropped)"
	kindTimedOut = "forwarded to the old leader and dropped (request timed out)"
)

// transferKind classifies a v3 error text as a member's answer to a write
// raft dropped during a leadership transfer; "" for any other error.
func transferKind(err string) string {
	switch {
	case strings.Contains(err, "raft proposal dropped"):
		return kindRefused
	case strings.Contains(err, "etcdserver: request timed out"):
		return kindTimedOut
	}
	return ""
}

// moveWindow is one leadership transfer: from the MoveLeader request to its
// answer, which etcd gives once the old leader follows the new one.
type moveWindow struct{ start, end time.Time }

// transferSlack covers the members that learn the new leader after the old
// one does: raft aborts a transfer that has not finished within one election
// timeout (tickHeartbeat), and the members of these tests use 500 ms.
const transferSlack = 500 * time.Millisecond

// duringMove reports whether a call in flight over [call, ret] overlapped a
// transfer, i.e. whether raft could have dropped it in that transfer.
func duringMove(call, ret time.Time, moves []moveWindow) bool {
	for _, m := range moves {
		if !call.After(m.end.Add(transferSlack)) && !ret.Before(m.start) {
			return true
		}
	}
	return false
}

func TestTransferKind(t *testing.T) {
	for _, tc := range []struct{ err, want string }{
		{"rpc error: code = Unknown desc = raft proposal dropped", kindRefused},
		{"etcdserver: request timed out", kindTimedOut},
		{"etcdserver: request timed out, possibly due to previous leader failure", kindTimedOut},
		{"rpc error: code = Unavailable desc = error reading from server: EOF", ""},
		{"etcdserver: server stopped", ""},
		{"context deadline exceeded", ""},
	} {
		t.Run(tc.err, func(t *testing.T) {
			if got := transferKind(tc.err); got != tc.want {
				t.Fatalf("transferKind(%q) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestDuringMove(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	moves := []moveWindow{{at(0), at(60)}}
	for _, tc := range []struct {
		name      string
		call, ret int
		want      bool
	}{
		{"refused inside the move", 10, 12, true},
		{"forwarded before the move, timed out after it", -5, 5995, true},
		{"sent within an election timeout after the answer", 60 + 499, 600, true},
		{"answered before the move", -100, -1, false},
		{"sent over an election timeout after the answer", 60 + 501, 700, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := duringMove(at(tc.call), at(tc.ret), moves); got != tc.want {
				t.Fatalf("duringMove = %v, want %v", got, tc.want)
			}
		})
	}
}
