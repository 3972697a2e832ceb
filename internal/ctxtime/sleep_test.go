package ctxtime

import (
	"context"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	t.Run("waits the whole duration", func(t *testing.T) {
		start := time.Now()
		if !Sleep(context.Background(), 20*time.Millisecond) {
			t.Fatal("reported cut short without a cancelled context")
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Fatalf("returned after %v, before the 20ms asked", d)
		}
	})
	t.Run("a cancelled context cuts it short", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if Sleep(ctx, time.Hour) {
			t.Fatal("reported the whole hour waited")
		}
	})
}
