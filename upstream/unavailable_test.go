package upstream

import "testing"

func TestPlainCause(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`call failed: connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`, "connection refused"},
		{`rpc error: code = Unavailable desc = last connection error: connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.2:2379: i/o timeout"`, "i/o timeout"},
		{`dial failed: dial tcp [::1]:2379: connect: connection refused`, "connection refused"},
		{`connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`,
			"tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{`health status NOT_SERVING`, "health status NOT_SERVING"},
		{`rpc error: code = DeadlineExceeded desc = context deadline exceeded`, "context deadline exceeded"},
		{``, "not answering"},
	} {
		if got := plainCause(tc.in); got != tc.want {
			t.Errorf("plainCause(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
