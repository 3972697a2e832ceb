package v2http

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
)

const keysPrefix = "/v2/keys"

// request is a parsed /v2/keys request.
type request struct {
	method           string
	key              string
	value            string
	dir              bool
	recursive        bool
	sorted           bool
	quorum           bool
	wait             bool
	stream           bool
	noValueOnSuccess bool
	waitIndex        uint64
	prevIndex        uint64
	prevValue        string
	prevExist        *bool
	ttl              *time.Duration
	refresh          bool
}

func parseErr(code int, cause string) *v2store.Error { return v2store.NewError(code, cause, 0) }

// parseRequest reads a request as 3.4's parseKeyRequest does, in the same
// order, so the first bad parameter names the same error. Form values in a
// url-encoded body win over the query string.
func parseRequest(r *http.Request, maxBody int64, lim keyLimits) (*request, *v2store.Error) {
	if isForm(r.Header.Get("Content-Type")) && r.Body != nil {
		r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	}
	if err := r.ParseForm(); err != nil {
		return nil, parseErr(v2store.EcodeInvalidForm, err.Error())
	}
	f := r.Form
	rq := &request{method: r.Method, key: cleanKey(strings.TrimPrefix(r.URL.Path, keysPrefix))}
	e := lim.check(rq.key, r.Method)
	if e != nil {
		return nil, e
	}
	if rq.prevIndex, e = getUint(f, "prevIndex"); e != nil {
		return nil, e
	}
	if rq.waitIndex, e = getUint(f, "waitIndex"); e != nil {
		return nil, e
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"recursive", &rq.recursive}, {"sorted", &rq.sorted}, {"wait", &rq.wait}, {"dir", &rq.dir}, {"quorum", &rq.quorum}, {"stream", &rq.stream}} {
		if *b.dst, e = getBool(f, b.name); e != nil {
			return nil, e
		}
	}
	if rq.wait && r.Method != http.MethodGet {
		return nil, parseErr(v2store.EcodeInvalidField, `"wait" can only be used with GET requests`)
	}
	rq.prevValue = f.Get("prevValue")
	if _, ok := f["prevValue"]; ok && rq.prevValue == "" {
		return nil, parseErr(v2store.EcodePrevValueRequired, `"prevValue" cannot be empty`)
	}
	if rq.noValueOnSuccess, e = getBool(f, "noValueOnSuccess"); e != nil {
		return nil, e
	}
	if f.Get("ttl") != "" {
		secs, err := strconv.ParseUint(f.Get("ttl"), 10, 64)
		if err != nil || secs > uint64(1<<62)/uint64(time.Second) {
			return nil, parseErr(v2store.EcodeTTLNaN, `invalid value for "ttl"`)
		}
		d := time.Duration(secs) * time.Second
		rq.ttl = &d
	}
	if _, ok := f["prevExist"]; ok {
		b, err := strconv.ParseBool(f.Get("prevExist"))
		if err != nil {
			return nil, parseErr(v2store.EcodeInvalidField, "invalid value for prevExist")
		}
		rq.prevExist = &b
	}
	if _, ok := f["refresh"]; ok {
		b, err := strconv.ParseBool(f.Get("refresh"))
		if err != nil {
			return nil, parseErr(v2store.EcodeInvalidField, "invalid value for refresh")
		}
		rq.refresh = b
		if b {
			if _, ok := f["value"]; ok && f.Get("value") != "" {
				return nil, parseErr(v2store.EcodeRefreshValue, "A value was provided on a refresh")
			}
			if rq.ttl == nil {
				return nil, parseErr(v2store.EcodeRefreshTTLRequired, "No TTL value set")
			}
		}
	}
	rq.value = f.Get("value")
	return rq, nil
}

// isForm reports whether a Content-Type is a url-encoded form, as
// mime.ParseMediaType sees it; the common exact spellings skip its parse
// (which allocates a parameter map).
func isForm(ct string) bool {
	switch ct {
	case "":
		return false
	case "application/x-www-form-urlencoded":
		return true
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "application/x-www-form-urlencoded"
}

// cleanKey is path.Clean("/" + p) without the concatenation when p already
// starts with a slash (Clean collapses the double slash the same way), so
// a clean key costs no allocation.
func cleanKey(p string) string {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	return path.Clean("/" + p)
}

func getUint(f url.Values, name string) (uint64, *v2store.Error) {
	vals, ok := f[name]
	if !ok || len(vals) == 0 {
		return 0, nil
	}
	u, err := strconv.ParseUint(vals[0], 10, 64)
	if err != nil {
		return 0, parseErr(v2store.EcodeIndexNaN, `invalid value for "`+name+`"`)
	}
	return u, nil
}

func getBool(f url.Values, name string) (bool, *v2store.Error) {
	vals, ok := f[name]
	if !ok || len(vals) == 0 {
		return false, nil
	}
	b, err := strconv.ParseBool(vals[0])
	if err != nil {
		return false, parseErr(v2store.EcodeInvalidField, `invalid value for "`+name+`"`)
	}
	return b, nil
}

// keyLimits bound a key before anything is built for it: etcd 3.4 has no
// such bounds, but its store kept a key's nodes in memory, where the shim
// turns them into a transaction that must fit the member's limits.
type keyLimits struct{ depth, bytes int }

const (
	defaultMaxKeyDepth = 512
	defaultMaxKeyBytes = 64 << 10
)

// check answers 209 naming the limit a key passes.
func (l keyLimits) check(key, method string) *v2store.Error {
	if l.depth == 0 {
		l.depth = defaultMaxKeyDepth
	}
	if l.bytes == 0 {
		l.bytes = defaultMaxKeyBytes
	}
	if d := strings.Count(key, "/"); d > l.depth {
		return parseErr(v2store.EcodeInvalidField, fmt.Sprintf("key has %d levels; the limit is %d (--v2-max-key-depth)", d, l.depth))
	}
	if len(key) > l.bytes {
		return parseErr(v2store.EcodeInvalidField, fmt.Sprintf("key is %d bytes long; the limit is %d (--v2-max-key-bytes)", len(key), l.bytes))
	}
	if method != http.MethodGet && method != http.MethodHead {
		if n := v2store.AncestorBytes(key); n > v2store.MaxAncestorBytes {
			return parseErr(v2store.EcodeInvalidField, fmt.Sprintf("the key's parent directories total %d bytes; the limit is %d (a write must fit etcd's 1.5 MiB request limit; shorten the key or its depth)", n, v2store.MaxAncestorBytes))
		}
	}
	return nil
}
