package v2http

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
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
	f, err := readForm(r, maxBody)
	if err != nil {
		return nil, parseErr(v2store.EcodeInvalidForm, err.Error())
	}
	rq := &request{method: r.Method, key: cleanKey(strings.TrimPrefix(r.URL.Path, keysPrefix))}
	e := lim.check(rq.key, r.Method)
	if e != nil {
		return nil, e
	}
	if rq.prevIndex, e = getUint(&f, "prevIndex"); e != nil {
		return nil, e
	}
	if rq.waitIndex, e = getUint(&f, "waitIndex"); e != nil {
		return nil, e
	}
	for _, b := range [...]struct {
		name string
		dst  *bool
	}{{"recursive", &rq.recursive}, {"sorted", &rq.sorted}, {"wait", &rq.wait}, {"dir", &rq.dir}, {"quorum", &rq.quorum}, {"stream", &rq.stream}} {
		if *b.dst, e = getBool(&f, b.name); e != nil {
			return nil, e
		}
	}
	if rq.wait && r.Method != http.MethodGet {
		return nil, parseErr(v2store.EcodeInvalidField, `"wait" can only be used with GET requests`)
	}
	var ok bool
	if rq.prevValue, ok = f.get("prevValue"); ok && rq.prevValue == "" {
		return nil, parseErr(v2store.EcodePrevValueRequired, `"prevValue" cannot be empty`)
	}
	if rq.noValueOnSuccess, e = getBool(&f, "noValueOnSuccess"); e != nil {
		return nil, e
	}
	if ttl, _ := f.get("ttl"); ttl != "" {
		secs, err := strconv.ParseUint(ttl, 10, 64)
		if err != nil || secs > uint64(1<<62)/uint64(time.Second) {
			return nil, parseErr(v2store.EcodeTTLNaN, `invalid value for "ttl"`)
		}
		d := time.Duration(secs) * time.Second
		rq.ttl = &d
	}
	if v, ok := f.get("prevExist"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, parseErr(v2store.EcodeInvalidField, "invalid value for prevExist")
		}
		rq.prevExist = &b
	}
	rq.value, _ = f.get("value")
	if v, ok := f.get("refresh"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, parseErr(v2store.EcodeInvalidField, "invalid value for refresh")
		}
		rq.refresh = b
		if b {
			if rq.value != "" {
				return nil, parseErr(v2store.EcodeRefreshValue, "A value was provided on a refresh")
			}
			if rq.ttl == nil {
				return nil, parseErr(v2store.EcodeRefreshTTLRequired, "No TTL value set")
			}
		}
	}
	return rq, nil
}

// form is a request's form values as r.ParseForm makes them (a url-encoded
// PUT or POST body's values first, then the query's), so that get answers as
// r.Form.Get and presence in r.Form would. Requests whose pairs need no
// unescaping, nearly all, keep the raw body and query and are looked up in
// place: ParseForm builds two maps and a slice per key, and reads the body
// through a growing buffer.
type form struct {
	raw  [2]string  // body, then query, when vals is nil
	vals url.Values // r.Form, for everything else
}

// get is the first value of name and whether name is present at all.
func (f *form) get(name string) (string, bool) {
	if f.vals != nil {
		vs, ok := f.vals[name]
		if !ok || len(vs) == 0 {
			return "", false
		}
		return vs[0], true
	}
	for _, s := range f.raw {
		for s != "" {
			var pair string
			pair, s, _ = strings.Cut(s, "&")
			if k, v, _ := strings.Cut(pair, "="); k == name && pair != "" {
				return v, true
			}
		}
	}
	return "", false
}

const formType = "application/x-www-form-urlencoded"

// maxRawPairs bounds the pairs of a body or query looked up in place (every
// parameter is looked up once); longer ones take ParseForm. Either way far
// below url.ParseQuery's own limit, unless GODEBUG lowers it.
const maxRawPairs = 64

var godebugQueryLimit = strings.Contains(os.Getenv("GODEBUG"), "urlmaxqueryparams")

// rawForm reports whether s can be looked up in place: url.ParseQuery would
// unescape nothing and find no error in it.
func rawForm(s string) bool {
	return !godebugQueryLimit && !strings.ContainsAny(s, "%+;") && strings.Count(s, "&") < maxRawPairs
}

// readForm reads r's form. A body is read only for a PUT, POST or PATCH
// whose Content-Type is exactly the url-encoded form type (what clients
// send) or absent (no body to read); any other Content-Type takes
// r.ParseForm itself, as before.
func readForm(r *http.Request, maxBody int64) (form, error) {
	var body string
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		switch ct := r.Header.Get("Content-Type"); {
		case ct == "" && r.Body != nil:
			// ParseForm reads no body of type application/octet-stream.
		case ct == formType && r.Body != nil:
			b, err := readBody(r.Body, maxBody)
			if err != nil {
				return form{}, err
			}
			body = b
			if !rawForm(body) || !rawForm(r.URL.RawQuery) {
				return parsedForm(body, r.URL.RawQuery)
			}
			return form{raw: [2]string{body, r.URL.RawQuery}}, nil
		default:
			if isForm(ct) && r.Body != nil {
				r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
			}
			err := r.ParseForm()
			return form{vals: r.Form}, err
		}
	}
	if !rawForm(r.URL.RawQuery) {
		vals, err := url.ParseQuery(r.URL.RawQuery)
		return form{vals: vals}, err
	}
	return form{raw: [2]string{"", r.URL.RawQuery}}, nil
}

// parsedForm is what ParseForm makes of a url-encoded body already read and
// the query: the body's values first, and the body's error first.
func parsedForm(body, query string) (form, error) {
	vals, err := url.ParseQuery(body)
	q, qerr := url.ParseQuery(query)
	if err == nil {
		err = qerr
	}
	for k, vs := range q {
		vals[k] = append(vals[k], vs...)
	}
	return form{vals: vals}, err
}

// bodyBufs are read buffers for form bodies; the body is copied out once,
// as the one string its values point into.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// readBody reads a url-encoded body as ParseForm does through
// http.MaxBytesReader(nil, body, max): all of it, or the same
// *http.MaxBytesError once more than max bytes arrive, or the body's error.
func readBody(body io.Reader, max int64) (string, error) {
	bp := bodyBufs.Get().(*[]byte)
	b := (*bp)[:0]
	defer func() {
		if cap(b) <= 64<<10 {
			*bp = b[:0]
			bodyBufs.Put(bp)
		}
	}()
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > max {
			return "", &http.MaxBytesError{Limit: max}
		}
		if err == io.EOF {
			return string(b), nil
		}
		if err != nil {
			return "", err
		}
	}
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

func getUint(f *form, name string) (uint64, *v2store.Error) {
	v, ok := f.get(name)
	if !ok {
		return 0, nil
	}
	u, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, parseErr(v2store.EcodeIndexNaN, `invalid value for "`+name+`"`)
	}
	return u, nil
}

func getBool(f *form, name string) (bool, *v2store.Error) {
	v, ok := f.get(name)
	if !ok {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
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
