package v2cache

import "github.com/coreos/go-semver/semver"

// SetMinVersion replaces the oldest member version the cache trusts, for a
// test; the returned function restores it.
func SetMinVersion(v string) func() {
	old := minVersion
	minVersion = *semver.New(v)
	return func() { minVersion = old }
}
