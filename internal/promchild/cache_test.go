package promchild

import (
	"strconv"
	"testing"
)

func TestCache(t *testing.T) {
	made := map[string]int{}
	c := New(2, func(k string) string { made[k]++; return "child " + k })
	for _, tc := range []struct {
		key, want string
		madeTimes int
	}{
		{"a", "child a", 1},
		{"a", "child a", 1}, // remembered
		{"b", "child b", 1},
		{"c", "child c", 1}, // over the bound: made, not remembered
		{"c", "child c", 2},
		{"b", "child b", 1},
	} {
		t.Run(tc.key+" "+strconv.Itoa(tc.madeTimes), func(t *testing.T) {
			if got := c.Get(tc.key); got != tc.want {
				t.Errorf("Get(%q) = %q, want %q", tc.key, got, tc.want)
			}
			if made[tc.key] != tc.madeTimes {
				t.Errorf("%q made %d times, want %d", tc.key, made[tc.key], tc.madeTimes)
			}
		})
	}
}
