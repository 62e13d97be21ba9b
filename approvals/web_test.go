package approvals_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/store"
)

const adminKey = "ss_admin-test-key"

// newWeb serves the web queue and API of b's queue, on its own (without
// the server's origin guard), with adminKey as b.admin's key.
func newWeb(t *testing.T, b *bundle) *httptest.Server {
	t.Helper()
	web, err := approvals.NewWeb(approvals.WebConfig{
		Queue: b.q,
		Authenticate: func(ctx context.Context, key string) (store.Principal, error) {
			if key == adminKey {
				return b.admin, nil
			}
			return store.Principal{}, &approvals.AuthFailure{Reason: "unknown key"}
		},
		Principal: func(ctx context.Context, keyID string) (store.Principal, error) {
			return b.db.Principal(ctx, keyID, time.Now())
		},
		Execute: func(ctx context.Context, a store.Approval, source string) (store.Approval, error) {
			t.Errorf("approval %s ran", a.ID)
			return a, nil
		},
		Origins: []string{"https://cdp.example/base/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(web)
	t.Cleanup(hs.Close)
	return hs
}

// TestWebRoutes holds the routes of the web queue and its API: each path
// answers its methods, any other method gets 405 with the methods it
// takes, an unknown path 404, each in the format of its surface (a page,
// or the API's JSON error), always with the security headers and a
// request id, and a trailing slash changes nothing.
func TestWebRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t, time.Hour)
	id := b.request(t, `{"audience":"aud_1"}`).ID
	hs := newWeb(t, b)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		method, path, key string
		status            int
		allow, says       string
	}{
		{"GET", "/approvals", "", http.StatusSeeOther, "", ""},
		{"GET", "/approvals/", "", http.StatusSeeOther, "", ""},
		{"HEAD", "/approvals/login", "", http.StatusOK, "", ""},
		{"GET", "/approvals/login/", "", http.StatusOK, "", "Sign in"},
		{"GET", "/approvals/" + id + "/", "", http.StatusSeeOther, "", ""},
		{"PUT", "/approvals/login", "", http.StatusMethodNotAllowed, "GET, POST", "takes GET and POST"},
		{"PUT", "/approvals/logout", "", http.StatusMethodNotAllowed, "POST", "takes POST"},
		{"GET", "/approvals/logout", "", http.StatusMethodNotAllowed, "POST", "takes POST"},
		{"POST", "/approvals/static/style.css", "", http.StatusMethodNotAllowed, "GET", "takes GET"},
		{"GET", "/approvals/" + id + "/decide/more", "", http.StatusNotFound, "", "no such page"},
		{"GET", "/api/v1/approvals", adminKey, http.StatusOK, "", `"approvals":[`},
		{"GET", "/api/v1/approvals/", adminKey, http.StatusOK, "", `"approvals":[`},
		{"GET", "/api/v1/approvals/" + id, adminKey, http.StatusOK, "", `"id":"` + id + `"`},
		{"GET", "/api/v1/approvals/" + id, "", http.StatusUnauthorized, "", `"code":"unauthenticated"`},
		{"GET", "/api/v1/approvals/" + id + "/approve", adminKey, http.StatusMethodNotAllowed, "POST", `"code":"method_not_allowed"`},
		{"DELETE", "/api/v1/approvals", adminKey, http.StatusMethodNotAllowed, "GET", `use GET`},
		{"POST", "/api/v1/approvals/" + id + "/cancel", adminKey, http.StatusNotFound, "", `"code":"not_found"`},
		{"GET", "/api/v1/approvals/" + id + "/approve/x", "", http.StatusNotFound, "", `"code":"not_found"`},
	} {
		req, _ := http.NewRequest(c.method, hs.URL+c.path, nil)
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		name := c.method + " " + c.path
		if resp.StatusCode != c.status || resp.Header.Get("Allow") != c.allow || !strings.Contains(string(body), c.says) {
			t.Errorf("%s: %d Allow %q %.200s; want %d Allow %q saying %q", name, resp.StatusCode, resp.Header.Get("Allow"), body, c.status, c.allow, c.says)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.HasPrefix(resp.Header.Get("X-Request-Id"), "req_") {
			t.Errorf("%s: no security headers or request id: %v", name, resp.Header)
		}
		api := strings.HasPrefix(c.path, "/api/")
		if json := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"); resp.StatusCode >= 400 && json != api {
			t.Errorf("%s: an error as %s", name, resp.Header.Get("Content-Type"))
		}
	}
}

// TestWebRefusesCrossOriginPosts shows the web queue's own origin check,
// without the server's guard in front: a form posted from another site is
// refused before anything reads it, the configured public origin is
// trusted, and "Origin: null" is left to the CSRF token.
func TestWebRefusesCrossOriginPosts(t *testing.T) {
	t.Parallel()
	b := setup(t, time.Hour)
	hs := newWeb(t, b)
	const foreign = "the form was sent from another site"
	const token = "the sign-in form expired"
	for _, c := range []struct {
		name    string
		headers map[string]string
		says    string
	}{
		{"a cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, foreign},
		{"a same-site fetch", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://other.cdp.example"}, foreign},
		{"a foreign Origin", map[string]string{"Origin": "https://evil.example"}, foreign},
		{"a foreign Referer", map[string]string{"Referer": "https://evil.example/page"}, foreign},
		{"the public origin", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://cdp.example"}, token},
		{"the server's own origin", map[string]string{"Origin": hs.URL, "Sec-Fetch-Site": "same-origin"}, token},
		{"Origin null", map[string]string{"Origin": "null"}, token},
		{"a same-origin Referer", map[string]string{"Referer": hs.URL + "/approvals/login"}, token},
	} {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/approvals/login", strings.NewReader(url.Values{"key": {adminKey}, "csrf": {"forged"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range c.headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), c.says) {
			t.Errorf("%s: %d %.300s; want 403 saying %q", c.name, resp.StatusCode, body[max(0, len(body)-600):], c.says)
		}
	}
}

// TestNewWebRefusesBadOrigins stops startup on a trusted origin that is
// not an absolute URL, instead of trusting less than was configured
// without a word.
func TestNewWebRefusesBadOrigins(t *testing.T) {
	t.Parallel()
	b := setup(t, time.Hour)
	for _, bad := range []string{"cdp.example", "/approvals", "https://", "://x"} {
		_, err := approvals.NewWeb(approvals.WebConfig{Queue: b.q, Origins: []string{bad},
			Authenticate: func(context.Context, string) (store.Principal, error) { return store.Principal{}, nil },
			Principal:    func(context.Context, string) (store.Principal, error) { return store.Principal{}, nil },
			Execute:      func(_ context.Context, a store.Approval, _ string) (store.Approval, error) { return a, nil }})
		if err == nil {
			t.Errorf("NewWeb accepted the origin %q", bad)
		}
	}
}
