package v2http

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// recordingStore accepts everything and remembers the last key it saw, so
// the fuzzer can check that bad input never reaches the store half-parsed.
type recordingStore struct{ calls int }

func (s *recordingStore) Get(context.Context, string, v2store.GetOptions) (*v2store.Event, v2store.Meta, error) {
	s.calls++
	return &v2store.Event{Action: "get", Node: &v2store.Node{Key: "/"}}, v2store.Meta{EtcdIndex: 1}, nil
}

func (s *recordingStore) Put(_ context.Context, key string, o v2store.SetOptions) (*v2store.Event, v2store.Meta, error) {
	s.calls++
	if o.Refresh && (o.TTL == nil || o.Value != "") {
		panic("refresh reached the store without a TTL or with a value")
	}
	return &v2store.Event{Action: "set", Node: &v2store.Node{Key: key}}, v2store.Meta{EtcdIndex: 1}, nil
}

func (s *recordingStore) CreateInOrder(_ context.Context, key string, _ v2store.SetOptions) (*v2store.Event, v2store.Meta, error) {
	s.calls++
	return &v2store.Event{Action: "create", Node: &v2store.Node{Key: key}}, v2store.Meta{EtcdIndex: 1}, nil
}

func (s *recordingStore) Delete(_ context.Context, key string, _ v2store.DeleteOptions) (*v2store.Event, v2store.Meta, error) {
	s.calls++
	return &v2store.Event{Action: "delete", Node: &v2store.Node{Key: key}}, v2store.Meta{EtcdIndex: 1}, nil
}

func (s *recordingStore) CanRead(context.Context, string, bool) error { return nil }

// FuzzKeysRequest sends arbitrary paths, queries and form bodies through the
// handler: it must never panic, must answer with a valid HTTP status, and
// every key it passes on must be a clean absolute path.
func FuzzKeysRequest(f *testing.F) {
	seeds := []struct{ method, path, query, body string }{
		{"GET", "/v2/keys/a", "recursive=true&sorted=true", ""},
		{"PUT", "/v2/keys/a/b", "", "value=1&ttl=5"},
		{"PUT", "/v2/keys/a", "prevExist=false", "value=x&prevValue=y"},
		{"PUT", "/v2/keys/a", "", "refresh=true&ttl=3"},
		{"PUT", "/v2/keys/a", "", "refresh=true&value=v"},
		{"POST", "/v2/keys/q", "", "value=job&dir=t"},
		{"DELETE", "/v2/keys/a", "prevIndex=18446744073709551615", ""},
		{"GET", "/v2/keys/%2F%2E%2E/x", "waitIndex=-1", ""},
		{"PUT", "/v2/keys/a", "ttl=99999999999999999999", "value=%zz"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.body)
	}
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		switch method {
		case "GET", "HEAD", "PUT", "POST", "DELETE", "PATCH":
		default:
			method = "GET"
		}
		u := &url.URL{Path: "/v2/keys/" + strings.TrimPrefix(path, "/"), RawQuery: query}
		req, err := http.NewRequest(method, u.String(), strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		st := &recordingStore{}
		rec := httptest.NewRecorder()
		New(Options{}, st).ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Code >= 400 && rec.Code != http.StatusMethodNotAllowed && !strings.Contains(rec.Body.String(), `"errorCode"`) {
			t.Fatalf("error %d without v2 error body: %q", rec.Code, rec.Body.String())
		}
	})
}

// FuzzKeyPath checks the key mapping: whatever the URL path, the key the
// store gets is absolute, clean and never escapes the v2 keyspace.
func FuzzKeyPath(f *testing.F) {
	for _, s := range []string{"a", "a/b/", "../../x", "a//b", "%2e%2e", "_hidden/x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL = &url.URL{Path: "/v2/keys/" + p}
		rq, e := parseRequest(r, 1<<20, keyLimits{})
		if e != nil {
			return
		}
		k := rq.key
		if !strings.HasPrefix(k, "/") || (len(k) > 1 && strings.HasSuffix(k, "/")) || strings.Contains(k, "//") ||
			strings.Contains("/"+k+"/", "/../") || strings.Contains("/"+k+"/", "/./") {
			t.Fatalf("unclean key %q from path %q", k, p)
		}
	})
}
