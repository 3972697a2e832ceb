package soak

import (
	"math"
	"testing"
	"time"
)

// The slope the long run bounds: least squares over the samples, per minute.
func TestSlopePerMinute(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(sec int, g float64) sample {
		return sample{at: t0.Add(time.Duration(sec) * time.Second), goroutines: g}
	}
	for _, tc := range []struct {
		name string
		ss   []sample
		want float64
	}{
		{"flat", []sample{at(0, 40), at(10, 40), at(20, 40)}, 0},
		{"one a minute", []sample{at(0, 40), at(60, 41), at(120, 42)}, 1},
		{"noise around flat", []sample{at(0, 40), at(10, 50), at(20, 40), at(30, 50), at(40, 40), at(50, 50), at(60, 40),
			at(70, 50), at(80, 40), at(90, 50), at(100, 40), at(110, 50)}, 180.0 / 143},
		{"a step of 10 in the middle of 3 minutes", []sample{at(0, 40), at(60, 40), at(120, 50), at(180, 50)}, 4},
		{"one sample", []sample{at(0, 40)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := slopePerMinute(tc.ss, goroutinesOf); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("slope %v, want %v", got, tc.want)
			}
		})
	}
}
