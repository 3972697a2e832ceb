package redact

import "testing"

func TestCause(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:40123: connect: connection refused"`, Unavailable},
		{`dial tcp [::1]:2379: connect: connection refused`, Unavailable},
		{`Get "http://10.0.0.7:2379/v2/keys": EOF`, Unavailable},
		{`last connection error: connection error: desc = "transport: authentication handshake failed"`, Unavailable},
		{`etcdserver: no leader`, `etcdserver: no leader`},
		{`etcdserver: request timed out`, `etcdserver: request timed out`},
		{`mvcc: required revision has been compacted`, `mvcc: required revision has been compacted`},
		{`context deadline exceeded`, `context deadline exceeded`},
		{`key /a/10.0.0.1 not found`, `key /a/10.0.0.1 not found`},
	} {
		if got := Cause(tc.in); got != tc.want {
			t.Errorf("Cause(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
