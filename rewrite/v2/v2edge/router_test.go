package v2edge

import (
	"net/http/httptest"
	"testing"
)

func TestRouter(t *testing.T) {
	rt := NewRouter(On("HEAD", "read"), On("GET", "read"), On("PUT", "put"), On("POST", "post"), On("DELETE", "delete"))
	for _, tc := range []struct {
		method string
		want   string // "" for 405
	}{
		{"HEAD", "read"}, {"GET", "read"}, {"PUT", "put"}, {"POST", "post"}, {"DELETE", "delete"},
		{"PATCH", ""}, {"OPTIONS", ""}, {"get", ""},
	} {
		t.Run(tc.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			got, ok := rt.Find(rec, httptest.NewRequest(tc.method, "/v2/keys/a", nil))
			if tc.want != "" {
				if !ok || got != tc.want || rec.Code != 200 || len(rec.Header()) != 0 {
					t.Fatalf("Find = %q %v, answered %d %v", got, ok, rec.Code, rec.Header())
				}
				return
			}
			// 3.4's allowMethod: the methods in the order given, plain text.
			if ok || got != "" || rec.Code != 405 || rec.Body.String() != "Method Not Allowed\n" ||
				rec.Header().Get("Allow") != "HEAD,GET,PUT,POST,DELETE" ||
				rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("Find = %q %v, answered %d %q %v", got, ok, rec.Code, rec.Body.String(), rec.Header())
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	rec := httptest.NewRecorder()
	MethodNotAllowed(rec)
	if rec.Code != 405 || rec.Body.String() != "Method Not Allowed\n" || rec.Header().Get("Allow") != "" {
		t.Fatalf("%d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
}
