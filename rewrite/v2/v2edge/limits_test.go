package v2edge

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/reqbody"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// TestLimitsOrDefaults: by what a handler was given, what it uses.
func TestLimitsOrDefaults(t *testing.T) {
	defaults := Limits{Timeout: v2store.DefaultTimeout, MaxRequestBytes: 3 << 20}
	set := Limits{Timeout: time.Second, MaxRequestBytes: 64}
	for given, want := range map[Limits]Limits{{}: defaults, set: set, {Timeout: -1, MaxRequestBytes: -1}: defaults} {
		t.Run(fmt.Sprintf("%+v", given), func(t *testing.T) {
			if got := given.OrDefaults(); got != want {
				t.Fatalf("%+v, want %+v", got, want)
			}
		})
	}
}

func TestLimitsBound(t *testing.T) {
	l := Limits{Timeout: time.Hour}
	before := time.Now()
	ctx, cancel := l.Bound(context.Background())
	defer cancel()
	d, ok := ctx.Deadline()
	if !ok || d.Before(before.Add(time.Hour)) || d.After(time.Now().Add(time.Hour)) {
		t.Fatalf("deadline %v (%v), want an hour from now", d, ok)
	}
	// A shorter deadline the caller set stays.
	short, cancelShort := context.WithTimeout(context.Background(), time.Minute)
	defer cancelShort()
	ctx, cancel2 := l.Bound(short)
	defer cancel2()
	if d2, _ := ctx.Deadline(); d2.After(time.Now().Add(time.Minute)) {
		t.Fatalf("deadline %v outlives the caller's", d2)
	}
}

func TestLimitsBody(t *testing.T) {
	l := Limits{MaxRequestBytes: 8}
	for _, tc := range []struct {
		name     string
		body     string
		declared bool // Content-Length set; otherwise chunked
		tooMuch  bool // DeclaresTooMuch
		err      error
	}{
		{"at the limit", "12345678", true, false, nil},
		{"declared over", "123456789", true, true, reqbody.ErrTooLarge},
		{"chunked at the limit", "12345678", false, false, nil},
		{"chunked over", "123456789", false, false, reqbody.ErrTooLarge},
		{"empty", "", true, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", "/v2/members", strings.NewReader(tc.body))
			if !tc.declared {
				r.ContentLength = -1
			}
			if got := l.DeclaresTooMuch(r); got != tc.tooMuch {
				t.Fatalf("DeclaresTooMuch = %v", got)
			}
			b, err := l.ReadBody(r)
			if !errors.Is(err, tc.err) {
				t.Fatalf("ReadBody: %v, want %v", err, tc.err)
			}
			if err == nil && string(b) != tc.body {
				t.Fatalf("ReadBody = %q", b)
			}
		})
	}
}
