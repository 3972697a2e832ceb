package v2store

import "time"

// SetTimeout shortens the bound on a Get's member calls for tests.
func SetTimeout(s *V3Store, d time.Duration) { s.timeout = d }
