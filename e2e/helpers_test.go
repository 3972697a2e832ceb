package e2e

import "testing"

// e2eSerial is the first call of a test that does not run alongside the
// parallel ones: every test here starts processes, so `make unit` (-short)
// skips it. (etcd's own e2e tests begin with BeforeTest for the same reason.)
func e2eSerial(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: starts etcd, shim or client processes")
	}
}

// e2eParallel is the first call of a test that may run alongside the
// others: skipped under -short, then parallel.
func e2eParallel(t *testing.T) {
	t.Helper()
	e2eSerial(t)
	t.Parallel()
}
