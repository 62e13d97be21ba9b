package guardrails

import (
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	const prefix = "ss_abcdefghijkl"
	key := prefix + "_" + strings.Repeat("q", 52)
	got := Redact(map[string]any{
		"model":      "customers",
		"password":   "hunter2",
		"ApiKey":     "abc",
		"nested":     map[string]any{"client_secret": "s3", "note": "my key is " + key},
		"list":       []any{key, 3.0},
		"long":       strings.Repeat("x", 5000),
		"Set-Cookie": "session=1",
	})
	flat := strings.Join([]string{got["password"].(string), got["ApiKey"].(string), got["Set-Cookie"].(string)}, ",")
	if flat != "[redacted],[redacted],[redacted]" {
		t.Errorf("secret-named fields: %s", flat)
	}
	nested := got["nested"].(map[string]any)
	if nested["client_secret"] != "[redacted]" || nested["note"] != "my key is "+prefix+"_[redacted]" {
		t.Errorf("nested = %v", nested)
	}
	if got["list"].([]any)[0] != prefix+"_[redacted]" || got["list"].([]any)[1] != 3.0 {
		t.Errorf("list = %v", got["list"])
	}
	if got["model"] != "customers" || len(got["long"].(string)) > 600 {
		t.Errorf("plain values must stay, long ones be cut: %v", got["model"])
	}
	if Redact(nil) != nil || Redact("text")["_not_an_object"] != "string" {
		t.Error("non-object arguments must be recorded by type only")
	}
	if got := Redact([]byte(`{"token":"x","a":1}`)); got["_not_an_object"] != "other" {
		t.Errorf("bytes are not arguments: %v", got)
	}
}

func TestRedactString(t *testing.T) {
	t.Parallel()
	key := "ss_abcdefghijkl_" + strings.Repeat("a", 52)
	if got := RedactString("x " + key + " y"); got != "x ss_abcdefghijkl_[redacted] y" {
		t.Errorf("RedactString = %q", got)
	}
	long := strings.Repeat("é", 400)
	if got := RedactString(long); len(got) > 512 || !strings.HasSuffix(got, store.TruncationMark) || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("long string not cut cleanly: %d bytes", len(got))
	}
}

func TestRedactStringHeaders(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"Authorization: Bearer abc.def\nnext":      "Authorization: [redacted]\nnext",
		"proxy-authorization=Basic dXNlcjpwdw==":   "proxy-authorization=[redacted]",
		"Cookie: signalsmith_session=s3cr3t; a=b":  "Cookie: [redacted]",
		"set-cookie:  sid=1; HttpOnly":             "set-cookie:  [redacted]",
		"sent Bearer eyJhbGciOi.payload.sig today": "sent Bearer [redacted] today",
		"a cookie jar and no header":               "a cookie jar and no header",
	}
	for in, want := range cases {
		if got := RedactString(in); got != want {
			t.Errorf("RedactString(%q) = %q, want %q", in, got, want)
		}
	}
	got := Redact(map[string]any{"headers": map[string]any{"Authorization": "Bearer x", "Cookie": "a=b", "Set-Cookie": "c=d"},
		"note": "retry with Authorization: Bearer zzz"})
	h := got["headers"].(map[string]any)
	if h["Authorization"] != "[redacted]" || h["Cookie"] != "[redacted]" || h["Set-Cookie"] != "[redacted]" ||
		got["note"] != "retry with Authorization: [redacted]" {
		t.Errorf("Redact = %v", got)
	}
}
