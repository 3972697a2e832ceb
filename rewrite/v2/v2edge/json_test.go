package v2edge

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriteJSON(t *testing.T) {
	v := struct {
		Name string   `json:"name"`
		URLs []string `json:"urls"`
	}{"m0", []string{"http://a<b>"}}
	for _, tc := range []struct {
		name   string
		write  func(w http.ResponseWriter)
		status int
		body   string
	}{
		// json.Encoder: HTML characters escaped, a newline after.
		{"encoder", func(w http.ResponseWriter) { WriteJSON(w, http.StatusCreated, v) }, 201,
			"{\"name\":\"m0\",\"urls\":[\"http://a\\u003cb\\u003e\"]}\n"},
		{"no newline", func(w http.ResponseWriter) { WriteJSONNoNewline(w, http.StatusOK, v) }, 200,
			`{"name":"m0","urls":["http://a\u003cb\u003e"]}`},
		{"message", func(w http.ResponseWriter) { WriteMessage(w, http.StatusGone, "Member permanently removed: 1a") }, 410,
			`{"message":"Member permanently removed: 1a"}`},
		{"empty", func(w http.ResponseWriter) { WriteEmpty(w, http.StatusOK) }, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.write(rec)
			if rec.Code != tc.status || rec.Body.String() != tc.body {
				t.Fatalf("%d %q, want %d %q", rec.Code, rec.Body.String(), tc.status, tc.body)
			}
			if got := rec.Header().Values("Content-Type"); len(got) != 1 || got[0] != "application/json" {
				t.Fatalf("Content-Type %q", got)
			}
		})
	}
}
