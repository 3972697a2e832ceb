package v2http

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// formParams are the parameters parseRequest looks up, and a few it does not.
var formParams = []string{"prevIndex", "waitIndex", "recursive", "sorted", "wait", "dir", "quorum", "stream",
	"prevValue", "noValueOnSuccess", "ttl", "prevExist", "refresh", "value", "other", "a", ""}

// checkFormEqualsParseForm reads one request with readForm and a copy of it
// with r.ParseForm, as parseRequest did before (MaxBytesReader for form
// bodies), and compares the error and every parameter's value and presence.
func checkFormEqualsParseForm(t *testing.T, method, ct, query, body string, maxBody int64) {
	t.Helper()
	mk := func() *http.Request {
		r, err := http.NewRequest(method, "http://shim/v2/keys/a", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.URL.RawQuery = query
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		return r
	}
	want := mk()
	if isForm(want.Header.Get("Content-Type")) && want.Body != nil {
		want.Body = http.MaxBytesReader(nil, want.Body, maxBody)
	}
	wantErr := want.ParseForm()
	f, err := readForm(mk(), maxBody)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("%s %q ?%q body %q: error %v, ParseForm's %v", method, ct, query, body, err, wantErr)
	}
	if err != nil {
		return
	}
	names := append([]string(nil), formParams...)
	for k := range want.Form {
		names = append(names, k)
	}
	for _, name := range names {
		v, ok := f.get(name)
		_, wantOK := want.Form[name]
		if v != want.Form.Get(name) || ok != wantOK {
			t.Fatalf("%s %q ?%q body %q: %q = %q (present %v), ParseForm %q (present %v)",
				method, ct, query, body, name, v, ok, want.Form.Get(name), wantOK)
		}
	}
}

func TestFormEqualsParseForm(t *testing.T) {
	for _, c := range []struct {
		name, method, ct, query, body string
		max                           int64
	}{
		{"get plain", "GET", "", "recursive=true&sorted=true", "", 1 << 20},
		{"get escaped", "GET", "", "value=a%20b&value=c", "", 1 << 20},
		{"get plus", "GET", "", "value=a+b", "", 1 << 20},
		{"get bad escape", "GET", "", "value=%zz&ttl=5", "", 1 << 20},
		{"get semicolon", "GET", "", "a=1;b=2&ttl=5", "", 1 << 20},
		{"get body ignored", "GET", formType, "", "value=x", 1 << 20},
		{"put form", "PUT", formType, "", "value=x", 1 << 20},
		{"body wins", "PUT", formType, "value=q&ttl=1", "value=b&prevExist=false", 1 << 20},
		{"body escaped, query plain", "PUT", formType, "value=q", "value=%41", 1 << 20},
		{"body plain, query escaped", "PUT", formType, "prevValue=%41", "value=b", 1 << 20},
		{"body bad, query bad", "PUT", formType, "x=%zz", "y=%qq", 1 << 20},
		{"body too large", "PUT", formType, "", "value=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 16},
		{"body exactly the limit", "PUT", formType, "", "value=0123456789", 16},
		{"empty pairs", "PUT", formType, "&&ttl=&", "&value&=x&", 1 << 20},
		{"no content type", "PUT", "", "value=q", "value=b", 1 << 20},
		{"json body", "PUT", "application/json", "value=q", `{"value":"b"}`, 1 << 20},
		{"form with charset", "POST", formType + "; charset=utf-8", "", "value=b", 1 << 20},
		{"form with charset too large", "POST", formType + "; charset=utf-8", "", "value=bbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 8},
		{"bad media type", "PUT", "text/html; x", "value=q", "value=b", 1 << 20},
		{"upper case form type", "PUT", "Application/X-WWW-Form-Urlencoded", "", "value=b", 1 << 20},
		{"delete body ignored", "DELETE", formType, "dir=true", "recursive=true", 1 << 20},
		{"many pairs", "GET", "", strings.Repeat("a=1&", 200) + "value=x", "", 1 << 20},
		{"large body", "PUT", formType, "", "value=" + strings.Repeat("v", 5000), 1 << 20},
	} {
		t.Run(c.name, func(t *testing.T) { checkFormEqualsParseForm(t, c.method, c.ct, c.query, c.body, c.max) })
	}
}

// FuzzFormEqualsParseForm: for any method, Content-Type, query and body,
// readForm answers every parameter as ParseForm does and fails alike.
func FuzzFormEqualsParseForm(f *testing.F) {
	f.Add("PUT", formType, "ttl=5", "value=x&prevValue=y", uint16(100))
	f.Add("GET", "", "wait=true&waitIndex=3", "", uint16(100))
	f.Add("POST", "text/plain", "a=%zz", "value=%41", uint16(3))
	f.Fuzz(func(t *testing.T, method, ct, query, body string, max uint16) {
		switch method {
		case "GET", "HEAD", "PUT", "POST", "DELETE", "PATCH":
		default:
			method = "PUT"
		}
		if _, err := url.Parse("http://shim/?" + query); err != nil || strings.ContainsAny(query, "#") {
			return
		}
		if strings.ContainsAny(ct, "\r\n") {
			return
		}
		checkFormEqualsParseForm(t, method, ct, query, body, int64(max))
	})
}
