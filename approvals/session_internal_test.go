package approvals

import (
	"testing"
	"time"
)

func TestSessionsExpireAndEnd(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	s := newSessions(8*time.Hour, func() time.Time { return now })
	id, sess, err := s.create("key_1")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := s.create("key_1")
	if err != nil || other == id {
		t.Fatalf("second session: %q %v", other, err)
	}
	if got, ok := s.get(id); !ok || got.keyID != "key_1" || got.csrf != sess.csrf || len(got.csrf) < 40 {
		t.Fatalf("get = %+v %v", got, ok)
	}
	if _, ok := s.get(id + "x"); ok {
		t.Error("a changed id found a session")
	}
	if _, ok := s.get(""); ok {
		t.Error("the empty id found a session")
	}
	now = now.Add(8*time.Hour - time.Second)
	if _, ok := s.get(id); !ok {
		t.Error("the session ended early")
	}
	now = now.Add(time.Second)
	if _, ok := s.get(id); ok {
		t.Error("the session outlived its expiry")
	}
	s.end(other)
	if _, ok := s.get(other); ok {
		t.Error("an ended session still works")
	}
}

func TestSessionTableIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := newSessions(time.Hour, func() time.Time { return now })
	for range maxSessions + 5 {
		now = now.Add(time.Millisecond)
		if _, _, err := s.create("k"); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.byID) > maxSessions {
		t.Errorf("%d sessions held", len(s.byID))
	}
}

func TestTokensEqual(t *testing.T) {
	t.Parallel()
	if tokensEqual("", "") || tokensEqual("a", "") || !tokensEqual("abc", "abc") || tokensEqual("abc", "abd") || tokensEqual("ab", "abc") {
		t.Error("tokensEqual is wrong")
	}
}

func TestSafeNextStaysOnTheQueue(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/approvals/apr_0192-ab":                 "/approvals/apr_0192-ab",
		"/approvals?state=pending&age=within_1h": "/approvals?state=pending&age=within_1h",
		"//evil.example/approvals":               "/approvals?state=pending",
		"https://evil.example":                   "/approvals?state=pending",
		"/approvals/../mcp":                      "/approvals?state=pending",
		"/approvals/apr_1\r\nSet-Cookie":         "/approvals?state=pending",
		"":                                       "/approvals?state=pending",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
