package v2migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

// ErrNoV2 is returned when the source answers /v2/keys with 404 and no v2
// error body: its v2 API is off (3.4/3.5 without --enable-v2, or 3.6+).
var ErrNoV2 = errors.New("v2 API not enabled on the source: start it with --enable-v2=true")

// Source reads a member's v2 store over its v2 HTTP API.
type Source struct {
	// URL is the member's client URL (http://host:2379).
	URL string
	// Client carries the source's TLS settings; nil uses a plain client.
	Client *http.Client
	// User and Password are v2 Basic credentials, when v2 auth is on.
	User, Password string
}

// Tree is a consistent read of a v2 subtree.
type Tree struct {
	Root *v2store.Node
	// Index is the source's X-Etcd-Index at the read: following starts at
	// Index+1.
	Index uint64
	// ReadAt is when the answer arrived; TTLs are seconds left at ReadAt.
	ReadAt time.Time
}

// sourceError is a v2 error the source answered.
type sourceError struct {
	Status int
	V2     v2store.Error
}

func (e *sourceError) Error() string {
	return fmt.Sprintf("v2 error %d: %s", e.V2.Code, e.V2.Error())
}

// isIndexCleared reports a watch index older than the source's history
// (401) or a watcher the source dropped (400): both need a fresh read.
func isIndexCleared(err error) bool {
	var se *sourceError
	return errors.As(err, &se) && (se.V2.Code == v2store.EcodeEventIndexCleared || se.V2.Code == v2store.EcodeWatcherCleared)
}

func (s *Source) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return http.DefaultClient
}

func (s *Source) keysURL(p string, q url.Values) string {
	u := &url.URL{Path: "/v2/keys" + p}
	return strings.TrimSuffix(s.URL, "/") + u.EscapedPath() + "?" + q.Encode()
}

// get performs one v2 GET and decodes the event.
func (s *Source) get(ctx context.Context, p string, q url.Values) (*v2store.Event, uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.keysURL(p, q), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("source %s: %w", s.URL, err)
	}
	if s.User != "" {
		req.SetBasicAuth(s.User, s.Password)
	}
	resp, err := s.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, fmt.Errorf("source %s unreachable: %w", s.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, fmt.Errorf("source %s: reading the answer: %w", s.URL, err)
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
	if resp.StatusCode != http.StatusOK {
		var ve v2store.Error
		if json.Unmarshal(body, &ve) == nil && ve.Code != 0 {
			return nil, idx, &sourceError{Status: resp.StatusCode, V2: ve}
		}
		if resp.StatusCode == http.StatusNotFound {
			return nil, idx, ErrNoV2
		}
		if resp.StatusCode == http.StatusUnauthorized {
			return nil, idx, fmt.Errorf("source %s: v2 auth is on: give --from-user", s.URL)
		}
		return nil, idx, fmt.Errorf("source %s: HTTP %d: %s", s.URL, resp.StatusCode, oneLine(body))
	}
	var ev v2store.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, idx, fmt.Errorf("source %s: decoding the v2 answer: %w", s.URL, err)
	}
	if ev.Node == nil {
		return nil, idx, fmt.Errorf("source %s: v2 answer without a node: %s", s.URL, oneLine(body))
	}
	return &ev, idx, nil
}

func oneLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// ReadTree reads the subtree at root with a linearizable (quorum) GET.
func (s *Source) ReadTree(ctx context.Context, root string) (*Tree, error) {
	q := url.Values{"recursive": {"true"}, "sorted": {"true"}, "quorum": {"true"}}
	ev, idx, err := s.get(ctx, root, q)
	if err != nil {
		var se *sourceError
		if errors.As(err, &se) && se.V2.Code == v2store.EcodeKeyNotFound {
			return nil, fmt.Errorf("%s not found on the source: %w", root, err)
		}
		return nil, err
	}
	if root == "/" {
		ev.Node.Key, ev.Node.Dir = "/", true
	}
	return &Tree{Root: ev.Node, Index: idx, ReadAt: time.Now()}, nil
}

// Wait long-polls the next change at or after waitIndex below root.
func (s *Source) Wait(ctx context.Context, root string, waitIndex uint64) (*v2store.Event, error) {
	q := url.Values{"wait": {"true"}, "recursive": {"true"}, "waitIndex": {strconv.FormatUint(waitIndex, 10)}}
	ev, _, err := s.get(ctx, root, q)
	return ev, err
}
