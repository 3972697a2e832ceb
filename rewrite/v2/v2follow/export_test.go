package v2follow

import (
	"context"
	"time"
)

// SetPause replaces the wait between watches; call it before Run.
func SetPause(f *Follower, pause func(ctx context.Context, d time.Duration) bool) { f.pause = pause }
