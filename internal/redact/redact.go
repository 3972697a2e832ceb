package redact

import (
	"regexp"
	"strings"
)

// Unavailable is the cause a client gets when the shim could not reach a
// member.
const Unavailable = "upstream member unavailable"

// hostPort finds an IPv4 or bracketed IPv6 address with a port, or a
// "dial tcp"/"dial unix" phrase, in an error text.
var hostPort = regexp.MustCompile(`\d{1,3}(\.\d{1,3}){3}:\d+|\[[0-9a-fA-F:.%a-z]*\]:\d+|dial (tcp|unix|udp)`)

// transportWords are in the texts of gRPC's and net/http's errors about the
// connection to the member, never in a member's own error.
var transportWords = []string{"transport:", "connection error", "connection refused", "connection reset", "no such host", "last connection error", "name resolver", "while dialing"}

// Cause returns msg when it is safe to show a client, else Unavailable.
// Member errors ("etcdserver: ...", "mvcc: ...", "auth: ...") pass; texts
// naming an address or a transport failure do not.
func Cause(msg string) string {
	if Leaks(msg) {
		return Unavailable
	}
	return msg
}

// Leaks reports whether msg names an address or the transport to a member.
func Leaks(msg string) bool {
	if hostPort.MatchString(msg) {
		return true
	}
	for _, w := range transportWords {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}
