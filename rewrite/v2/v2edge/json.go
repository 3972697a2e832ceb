package v2edge

import (
	"encoding/json"
	"net/http"
)

// WriteJSON answers v as 3.4 writes its keys, members and auth answers:
// Content-Type application/json, the status, then json.Encoder's line with
// its newline.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteJSONNoNewline answers v as 3.4 writes its stats and error messages:
// json.Marshal's bytes with no newline.
func WriteJSONNoNewline(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// WriteEmpty answers the status with Content-Type application/json and no
// body, as 3.4 answers an auth enable, disable or delete.
func WriteEmpty(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
}
