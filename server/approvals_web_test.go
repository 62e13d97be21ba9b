package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
)

// web is a person's browser on the approval queue: a cookie jar, no
// automatic redirects, and the CSRF token of the last page it read.
type web struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newWeb(t *testing.T, base string, client *http.Client) *web {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if client != nil {
		c.Transport = client.Transport
	}
	return &web{t: t, base: base, c: c}
}

// do sends a request and returns the response with its body read.
func (w *web) do(req *http.Request) (*http.Response, string) {
	w.t.Helper()
	resp, err := w.c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	if m := csrfRE.FindStringSubmatch(string(body)); m != nil {
		w.csrf = m[1]
	}
	return resp, string(body)
}

func (w *web) get(path string) (*http.Response, string) {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodGet, w.base+path, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.do(req)
}

// post sends a form as a same-origin browser would.
func (w *web) post(path string, form url.Values, headers ...string) (*http.Response, string) {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "null") // what browsers send under Referrer-Policy no-referrer
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return w.do(req)
}

// signIn signs in with key and fails the test unless it worked.
func (w *web) signIn(key string) {
	w.t.Helper()
	if resp, body := w.trySignIn(key); resp.StatusCode != http.StatusSeeOther {
		w.t.Fatalf("sign in: %d\n%s", resp.StatusCode, body)
	}
}

func (w *web) trySignIn(key string) (*http.Response, string) {
	w.t.Helper()
	if resp, body := w.get("/approvals/login"); resp.StatusCode != http.StatusOK {
		w.t.Fatalf("sign-in page: %d\n%s", resp.StatusCode, body)
	}
	return w.post("/approvals/login", url.Values{"key": {key}, "csrf": {w.csrf}})
}

// decide posts the decision form of an approval.
func (w *web) decide(id, decision, comment string) (*http.Response, string) {
	w.t.Helper()
	if resp, body := w.get("/approvals/" + id); resp.StatusCode != http.StatusOK {
		w.t.Fatalf("detail page: %d\n%s", resp.StatusCode, body)
	}
	return w.post("/approvals/"+id+"/decide", url.Values{"csrf": {w.csrf}, "decision": {decision}, "comment": {comment}})
}

func (w *web) cookie(name string) *http.Cookie {
	u, _ := url.Parse(w.base + "/approvals/")
	for _, c := range w.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// api calls the JSON API with a bearer key and decodes the answer.
func api(t *testing.T, base, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		t.Fatalf("%s %s: %d answered non-JSON %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// requestApproval has an agent ask for a large customer preview, which the
// test policies send to a human, and returns the approval id.
func requestApproval(t *testing.T, e *env, agentKey string, limit int) string {
	t.Helper()
	var q struct {
		ApprovalID string `json:"approval_id"`
	}
	structured(t, call(t, e.client(t, agentKey), "preview_model", map[string]any{"model": "customers", "limit": limit}), &q)
	if q.ApprovalID == "" {
		t.Fatal("the preview was not queued for approval")
	}
	return q.ApprovalID
}

func (e *env) approval(t *testing.T, id string) store.Approval {
	t.Helper()
	a, err := e.db.GetApproval(context.Background(), e.ws.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *env) auditCount(t *testing.T) int {
	t.Helper()
	return len(e.audit(t))
}

func TestWebSignInSetsAStrictSessionCookie(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, admin := e.key(t, "alice", "admin", store.KindUser, nil)
	id := requestApproval(t, e, agentKey, 60)
	w := newWeb(t, e.http.URL, nil)

	// Not signed in: the queue sends the browser to the sign-in page and
	// back to the page it wanted afterwards.
	resp, _ := w.get("/approvals/" + id)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/approvals/login?next="+url.QueryEscape("/approvals/"+id) {
		t.Fatalf("unauthenticated detail page: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := w.get("/approvals/login?next=" + url.QueryEscape("/approvals/"+id))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<label for="key">API key</label>`) || !strings.Contains(body, `type="password"`) {
		t.Fatalf("sign-in page: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = w.post("/approvals/login", url.Values{"key": {adminKey}, "csrf": {w.csrf}, "next": {"/approvals/" + id}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/approvals/"+id {
		t.Fatalf("sign in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "signalsmith_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/approvals" ||
		session.Secure || session.MaxAge < 7*3600 || session.MaxAge > 8*3600 || len(session.Value) < 40 {
		t.Fatalf("session cookie = %+v", session)
	}
	if strings.Contains(session.Value, adminKey[16:]) {
		t.Fatal("the session cookie carries the key")
	}
	resp, body = w.get("/approvals/" + id)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in as <strong>alice</strong>") {
		t.Fatalf("detail page after sign-in: %d\n%s", resp.StatusCode, body)
	}
	ev := e.lastAudit(t)
	if ev.Action != "approvals.sign_in" || ev.Source != store.SourceUI || ev.ActorID != admin.MemberID || ev.Decision != store.DecisionAllowed {
		t.Errorf("sign-in audit = %+v", ev)
	}
	// A redirect target off the queue is ignored.
	w2 := newWeb(t, e.http.URL, nil)
	w2.get("/approvals/login")
	resp, _ = w2.post("/approvals/login", url.Values{"key": {adminKey}, "csrf": {w2.csrf}, "next": {"https://evil.example/"}})
	if resp.Header.Get("Location") != "/approvals?state=pending" {
		t.Errorf("open redirect: %q", resp.Header.Get("Location"))
	}

	// Under TLS the cookie is Secure too.
	ts := httptest.NewTLSServer(e.srv.Handler())
	t.Cleanup(ts.Close)
	tw := newWeb(t, ts.URL, ts.Client())
	tw.get("/approvals/login")
	resp, _ = tw.post("/approvals/login", url.Values{"key": {adminKey}, "csrf": {tw.csrf}})
	if c := resp.Cookies(); resp.StatusCode != http.StatusSeeOther || len(c) == 0 || !c[0].Secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("sign-in over TLS: %d %+v", resp.StatusCode, c)
	}
}

func TestWebRefusesAgentKeysBadKeysAndForgedSignIns(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)

	w := newWeb(t, e.http.URL, nil)
	resp, body := w.trySignIn(agentKey)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "agent keys cannot use the approval queue") || w.cookie("signalsmith_session") != nil {
		t.Errorf("agent key sign-in: %d\n%s", resp.StatusCode, body)
	}
	if ev := e.lastAudit(t); ev.Decision != store.DecisionDenied || ev.Source != store.SourceUI || ev.ActorType != store.KindAgent {
		t.Errorf("refused agent sign-in audit = %+v", ev)
	}
	resp, body = w.trySignIn(wrongSecret(adminKey))
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "invalid, revoked or expired") || w.cookie("signalsmith_session") != nil {
		t.Errorf("wrong key sign-in: %d\n%s", resp.StatusCode, body)
	}
	if ev := e.lastAudit(t); ev.Decision != store.DecisionDenied || ev.Reason != "wrong secret" || ev.KeyPrefix != adminKey[:15] {
		t.Errorf("refused sign-in audit = %+v", ev)
	}
	resp, _ = w.trySignIn("")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("empty key: %d", resp.StatusCode)
	}

	// The sign-in form needs its token, from this site.
	before := e.auditCount(t)
	fresh := newWeb(t, e.http.URL, nil)
	for name, form := range map[string]url.Values{
		"no token":    {"key": {adminKey}},
		"wrong token": {"key": {adminKey}, "csrf": {"x"}},
	} {
		fresh.get("/approvals/login")
		if resp, _ := fresh.post("/approvals/login", form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("sign-in with %s: %d", name, resp.StatusCode)
		}
	}
	fresh.get("/approvals/login")
	if resp, _ := fresh.post("/approvals/login", url.Values{"key": {adminKey}, "csrf": {fresh.csrf}}, "Origin", "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in from another origin: %d", resp.StatusCode)
	}
	if resp, _ := fresh.post("/approvals/login", url.Values{"key": {adminKey}, "csrf": {fresh.csrf}, "extra": {"1"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("sign-in with an unknown field: %d", resp.StatusCode)
	}
	if fresh.cookie("signalsmith_session") != nil || e.auditCount(t) != before {
		t.Error("a refused sign-in form started a session or wrote audit")
	}
}

func TestWebApprovesAndRejectsWithImpactAndOutcome(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	agentKey, agent := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, admin := e.key(t, "alice", "admin", store.KindUser, nil)
	first := requestApproval(t, e, agentKey, 60)
	second := requestApproval(t, e, agentKey, 70)
	w := newWeb(t, e.http.URL, nil)
	w.signIn(adminKey)

	resp, body := w.get("/approvals?state=pending")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, first) || !strings.Contains(body, second) || !strings.Contains(body, "large customer previews need a human") {
		t.Fatalf("pending list: %d\n%s", resp.StatusCode, body)
	}
	resp, body = w.get("/approvals/" + first)
	for _, want := range []string{
		"preview_model", "&#34;limit&#34;: 60", "customers-preview-review", "large customer previews need a human",
		"The model as it is now", "&#34;primary_key&#34;: &#34;customer_id&#34;", "The call reads this model; it changes nothing.",
		`name="decision" value="approve"`, `<label for="comment">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("detail page lacks %s", want)
		}
	}
	if resp.StatusCode != http.StatusOK || t.Failed() {
		t.Fatalf("detail page: %d\n%s", resp.StatusCode, body)
	}

	resp, _ = w.decide(first, "approve", "fine for the campaign")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/approvals/"+first+"?done=approved" {
		t.Fatalf("approve: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	a := e.approval(t, first)
	if a.State != store.ApprovalSucceeded || a.DeciderID != admin.MemberID || a.Comment != "fine for the campaign" || !strings.Contains(a.Outcome, `"row_count":60`) {
		t.Fatalf("after approval: %s by %s %q %.100s", a.State, a.DeciderName, a.Comment, a.Outcome)
	}
	_, body = w.get("/approvals/" + first + "?done=approved")
	for _, want := range []string{"You approved it", "state-succeeded", "row_count", "fine for the campaign"} {
		if !strings.Contains(body, want) {
			t.Errorf("outcome page lacks %s", want)
		}
	}
	if strings.Contains(body, "@example.") {
		t.Error("the outcome shows unmasked emails")
	}
	var decided, executed bool
	for _, ev := range e.audit(t) {
		if ev.ApprovalID != first {
			continue
		}
		if ev.Action == "approvals.decide" && ev.Decision == store.DecisionAllowed && ev.Source == store.SourceUI && ev.ActorID == admin.MemberID {
			decided = true
		}
		if ev.Decision == store.DecisionExecuted && ev.Source == store.SourceUI && ev.ActorID == agent.MemberID && strings.Contains(ev.Reason, "alice") {
			executed = true
		}
	}
	if !decided || !executed {
		t.Errorf("audit: decided %v, executed %v", decided, executed)
	}

	resp, _ = w.decide(second, "reject", "too many rows")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reject: %d", resp.StatusCode)
	}
	if b := e.approval(t, second); b.State != store.ApprovalRejected || b.Comment != "too many rows" || b.Outcome == "" {
		t.Errorf("after rejection: %+v", b)
	}
	// A decided approval cannot be decided again; the page says why.
	resp, body = w.post("/approvals/"+second+"/decide", url.Values{"csrf": {w.csrf}, "decision": {"approve"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "not pending") {
		t.Errorf("approving a rejected approval: %d", resp.StatusCode)
	}
	if b := e.approval(t, second); b.State != store.ApprovalRejected {
		t.Errorf("state after a second decision: %s", b.State)
	}
}

func TestWebRefusesPostsWithoutSessionOrCSRF(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
	otherKey, _ := e.key(t, "bob", "admin", store.KindUser, nil)
	id := requestApproval(t, e, agentKey, 60)
	w := newWeb(t, e.http.URL, nil)
	w.signIn(adminKey)
	w.get("/approvals/" + id)
	good := w.csrf
	other := newWeb(t, e.http.URL, nil)
	other.signIn(otherKey)
	other.get("/approvals/" + id)
	before := e.auditCount(t)

	anon := newWeb(t, e.http.URL, nil)
	if resp, _ := anon.post("/approvals/"+id+"/decide", url.Values{"csrf": {good}, "decision": {"approve"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without a session: %d", resp.StatusCode)
	}
	forged := newWeb(t, e.http.URL, nil)
	forged.c.Jar.SetCookies(mustURL(t, e.http.URL+"/approvals/"), []*http.Cookie{{Name: "signalsmith_session", Value: "forged-session-id-forged-session-id-forged"}})
	if resp, _ := forged.post("/approvals/"+id+"/decide", url.Values{"csrf": {good}, "decision": {"approve"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST with a made-up session: %d", resp.StatusCode)
	}
	cases := []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"no token", url.Values{"decision": {"approve"}}, nil},
		{"a wrong token", url.Values{"csrf": {good + "x"}, "decision": {"approve"}}, nil},
		{"another session's token", url.Values{"csrf": {other.csrf}, "decision": {"approve"}}, nil},
		{"two tokens", url.Values{"csrf": {good, good}, "decision": {"approve"}}, nil},
		{"a foreign Origin", url.Values{"csrf": {good}, "decision": {"approve"}}, []string{"Origin", "https://evil.example"}},
		{"a foreign Referer", url.Values{"csrf": {good}, "decision": {"approve"}}, []string{"Origin", "", "Referer", "https://evil.example/page"}},
		{"a cross-site fetch", url.Values{"csrf": {good}, "decision": {"approve"}}, []string{"Sec-Fetch-Site", "cross-site"}},
	}
	for _, tc := range cases {
		if resp, _ := w.post("/approvals/"+id+"/decide", tc.form, tc.headers...); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST with %s: %d, want 403", tc.name, resp.StatusCode)
		}
	}
	if resp, _ := w.post("/approvals/logout", url.Values{"csrf": {"nope"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out without the token: %d", resp.StatusCode)
	}
	if a := e.approval(t, id); a.State != store.ApprovalPending || e.auditCount(t) != before {
		t.Fatalf("refused POSTs changed something: %s, audit %d -> %d", a.State, before, e.auditCount(t))
	}
	// The same form with the right token and a same-origin Origin works.
	resp, _ := w.post("/approvals/"+id+"/decide", url.Values{"csrf": {good}, "decision": {"reject"}}, "Origin", e.http.URL, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther || e.approval(t, id).State != store.ApprovalRejected {
		t.Errorf("a proper POST: %d", resp.StatusCode)
	}
}

// wrongSecret returns key with one secret character changed.
func wrongSecret(key string) string {
	c := byte('a')
	if key[20] == 'a' {
		c = 'b'
	}
	return key[:20] + string(c) + key[21:]
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestRequesterCannotApproveThroughWebOrAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	ctx := context.Background()
	// A human admin asking through MCP with their own user key, and an
	// agent acting for another admin.
	humanKey, _ := e.key(t, "hana", "admin", store.KindUser, nil)
	ownerKey, _ := e.key(t, "olga", "admin", store.KindUser, nil)
	full, prefix, hash, err := server.NewKeySecret(4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.CreateKey(ctx, store.NewKey{WorkspaceID: e.ws.ID, MemberName: "olgas-bot", Kind: store.KindAgent, Role: "member",
		OwnerName: "olga", Name: "olgas-bot", Prefix: prefix, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	own := requestApproval(t, e, humanKey, 60)
	botOwned := requestApproval(t, e, full, 60)

	cases := []struct {
		who, key, id, why string
	}{
		{"the requester", humanKey, own, "nobody may decide their own request"},
		{"the owner of the requesting agent", ownerKey, botOwned, "owner of the requesting agent key"},
	}
	for _, tc := range cases {
		w := newWeb(t, e.http.URL, nil)
		w.signIn(tc.key)
		_, body := w.get("/approvals/" + tc.id)
		if strings.Contains(body, `value="approve"`) || !strings.Contains(body, tc.why) {
			t.Errorf("%s sees the decision form or no reason:\n%s", tc.who, body)
		}
		// Posting the form anyway is refused.
		resp, body := w.post("/approvals/"+tc.id+"/decide", url.Values{"csrf": {w.csrf}, "decision": {"approve"}})
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, tc.why) {
			t.Errorf("%s approving through the web: %d", tc.who, resp.StatusCode)
		}
		status, out := api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+tc.id+"/approve", tc.key, `{"comment":"mine"}`)
		if status != http.StatusForbidden || !strings.Contains(errMessage(out), tc.why) {
			t.Errorf("%s approving through the API: %d %v", tc.who, status, out)
		}
		if a := e.approval(t, tc.id); a.State != store.ApprovalPending {
			t.Errorf("%s's attempts moved the approval to %s", tc.who, a.State)
		}
	}
	// The agent key cannot use the API at all.
	if status, out := api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+botOwned+"/approve", full, ""); status != http.StatusForbidden {
		t.Errorf("agent key on the API: %d %v", status, out)
	}
}

func errMessage(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestExpiredApprovalCannotBeApprovedThroughWebOrAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies), func(c *server.Config) {
		c.Approvals = approvals.NewQueue(c.Store, c.RBAC, 300*time.Millisecond)
	})
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
	viaWeb := requestApproval(t, e, agentKey, 60)
	viaAPI := requestApproval(t, e, agentKey, 61)
	w := newWeb(t, e.http.URL, nil)
	w.signIn(adminKey)
	w.get("/approvals/" + viaWeb)
	time.Sleep(400 * time.Millisecond)

	_, body := w.get("/approvals/" + viaWeb)
	if !strings.Contains(body, "can no longer be approved") || strings.Contains(body, `value="approve"`) {
		t.Errorf("the detail page of an expired approval offers to approve it")
	}
	resp, body := w.post("/approvals/"+viaWeb+"/decide", url.Values{"csrf": {w.csrf}, "decision": {"approve"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "expired") {
		t.Errorf("approving an expired approval through the web: %d", resp.StatusCode)
	}
	status, out := api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+viaAPI+"/approve", adminKey, "")
	if status != http.StatusConflict || errCode(out) != "conflict" || !strings.Contains(errMessage(out), "expired") {
		t.Errorf("approving an expired approval through the API: %d %v", status, out)
	}
	for _, id := range []string{viaWeb, viaAPI} {
		if a := e.approval(t, id); a.State != store.ApprovalExpired || a.DeciderID != "" {
			t.Errorf("%s after the attempt: %s decided by %q", id, a.State, a.DeciderID)
		}
	}
}

func TestWebBadInputGetsClearErrorsAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
	id := requestApproval(t, e, agentKey, 60)
	w := newWeb(t, e.http.URL, nil)
	w.signIn(adminKey)
	w.get("/approvals/" + id)
	before := e.auditCount(t)
	form := func(kv ...string) url.Values {
		v := url.Values{"csrf": {w.csrf}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}

	posts := []struct {
		name, path string
		form       url.Values
		status     int
		says       string
	}{
		{"an unknown approval", "/approvals/apr_00000000-0000-0000-0000-000000000000/decide", form("decision", "approve"), 404, "no approval apr_00000000"},
		{"a malformed id", "/approvals/apr_%3Cscript%3E/decide", form("decision", "approve"), 400, "is not an approval id"},
		{"a comment too long", "/approvals/" + id + "/decide", form("decision", "approve", "comment", strings.Repeat("é", 1001)), 400, "the limit is 2000"},
		{"a control character", "/approvals/" + id + "/decide", form("decision", "approve", "comment", "ok\x00"), 400, "control character"},
		{"no decision", "/approvals/" + id + "/decide", form("comment", "hm"), 400, "decision must be approve or reject"},
		{"a bad decision", "/approvals/" + id + "/decide", form("decision", "maybe"), 400, "decision must be approve or reject"},
		{"two decisions", "/approvals/" + id + "/decide", form("decision", "reject", "decision", "approve"), 400, "decision is given 2 times"},
		{"an unknown field", "/approvals/" + id + "/decide", form("decision", "approve", "run_as", "root"), 400, "unknown decision field"},
		{"an oversized form", "/approvals/" + id + "/decide", form("decision", "approve", "comment", strings.Repeat("x", 20000)), 413, "larger than"},
	}
	for _, tc := range posts {
		resp, body := w.post(tc.path, tc.form)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("POST with %s: %d, want %d saying %q\n%.2000s", tc.name, resp.StatusCode, tc.status, tc.says, body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/approvals/"+id+"/decide", strings.NewReader(`{"decision":"approve"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, _ := w.do(req); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a JSON body to the form: %d", resp.StatusCode)
	}
	gets := []struct {
		path, says string
		status     int
	}{
		{"/approvals?state=maybe", "state &#34;maybe&#34; is not one of", 400},
		{"/approvals?age=forever", "age &#34;forever&#34; is not one of", 400},
		{"/approvals?requester=nobody", "no member &#34;nobody&#34;", 400},
		{"/approvals?tool=drop_tables", "is not a tool of this server", 400},
		{"/approvals?tool=%3Cb%3E", "is not a tool of this server", 400},
		{"/approvals?state=pending&state=failed", "state is given 2 times", 400},
		{"/approvals?sort=desc", "unknown filter field", 400},
		{"/approvals/apr_00000000-0000-0000-0000-000000000000", "no approval", 404},
		{"/approvals/" + id + "/nothing", "no such page", 404},
		{"/approvals/static/", "is not an approval id", 400},
	}
	for _, tc := range gets {
		resp, body := w.get(tc.path)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("GET %s: %d, want %d saying %q", tc.path, resp.StatusCode, tc.status, tc.says)
		}
	}
	for _, m := range []struct{ method, path, allow string }{
		{http.MethodGet, "/approvals/" + id + "/decide", "POST"},
		{http.MethodPut, "/approvals", "GET"},
		{http.MethodDelete, "/approvals/" + id, "GET"},
		{http.MethodGet, "/approvals/logout", "POST"},
	} {
		req, _ := http.NewRequest(m.method, e.http.URL+m.path, nil)
		resp, _ := w.do(req)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != m.allow {
			t.Errorf("%s %s: %d Allow %q", m.method, m.path, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	// Good filters work.
	_, k := e.key(t, "agent-2", "member", store.KindAgent, nil)
	for _, q := range []string{"state=pending&tool=preview_model&age=within_1h&requester=agent-1", "state=all&age=older_1h", "requester=" + k.MemberID} {
		if resp, _ := w.get("/approvals?" + q); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /approvals?%s: %d", q, resp.StatusCode)
		}
	}
	if _, body := w.get("/approvals?state=pending&requester=agent-1&age=within_1h"); !strings.Contains(body, id) {
		t.Error("the filtered list lacks the approval")
	}
	if _, body := w.get("/approvals?age=older_1h"); strings.Contains(body, id) {
		t.Error("a new approval is listed as older than an hour")
	}
	if a := e.approval(t, id); a.State != store.ApprovalPending || e.auditCount(t) != before {
		t.Fatalf("bad input changed something: %s, audit %d -> %d", a.State, before, e.auditCount(t))
	}
}

func TestAPIListsGetsAndDecides(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	agentKey, agent := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, admin := e.key(t, "alice", "admin", store.KindUser, nil)
	memberKey, _ := e.key(t, "mia", "member", store.KindUser, nil)
	first := requestApproval(t, e, agentKey, 60)
	second := requestApproval(t, e, agentKey, 70)

	status, out := api(t, e.http.URL, http.MethodGet, "/api/v1/approvals?state=pending&requester=agent-1&tool=preview_model&age=within_24h&limit=10", adminKey, "")
	list, _ := out["approvals"].([]any)
	if status != http.StatusOK || len(list) != 2 {
		t.Fatalf("list: %d %v", status, out)
	}
	got, _ := list[0].(map[string]any)
	if got["id"] != second || got["url"] != "https://signalsmith.example/approvals/"+second || got["requester_id"] != agent.MemberID {
		t.Errorf("newest listed approval = %v", got)
	}
	status, out = api(t, e.http.URL, http.MethodGet, "/api/v1/approvals/"+first, memberKey, "")
	if status != http.StatusOK || out["id"] != first || out["state"] != store.ApprovalPending || out["tool"] != "preview_model" {
		t.Fatalf("get as a member: %d %v", status, out)
	}
	// A member may read but not decide.
	status, out = api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+first+"/approve", memberKey, `{}`)
	if status != http.StatusForbidden || !strings.Contains(errMessage(out), "approvals.decide") {
		t.Errorf("a member approving: %d %v", status, out)
	}

	status, out = api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+first+"/approve", adminKey, `{"comment":"go ahead"}`)
	if status != http.StatusOK || out["state"] != store.ApprovalSucceeded || out["comment"] != "go ahead" || out["decider_id"] != admin.MemberID {
		t.Fatalf("approve: %d %v", status, out)
	}
	status, out = api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+second+"/reject", adminKey, "")
	if status != http.StatusOK || out["state"] != store.ApprovalRejected {
		t.Fatalf("reject: %d %v", status, out)
	}
	status, out = api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+second+"/approve", adminKey, "")
	if status != http.StatusConflict || errCode(out) != "conflict" {
		t.Errorf("approving a rejected approval: %d %v", status, out)
	}
	var decisions, executions int
	for _, ev := range e.audit(t) {
		if ev.Source != store.SourceAPI {
			continue
		}
		switch {
		case ev.Action == "approvals.decide" && ev.Decision == store.DecisionAllowed:
			decisions++
		case ev.Decision == store.DecisionExecuted && ev.ApprovalID == first:
			executions++
		}
	}
	if decisions != 2 || executions != 1 {
		t.Errorf("API audit: %d decisions, %d executions", decisions, executions)
	}
}

func TestAPIBadInputGetsClearErrorsAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
	id := requestApproval(t, e, agentKey, 60)
	before := e.auditCount(t)
	approve := "/api/v1/approvals/" + id + "/approve"

	cases := []struct {
		name, method, path, body string
		status                   int
		code, says               string
	}{
		{"an unknown id", "GET", "/api/v1/approvals/apr_00000000-0000-0000-0000-000000000000", "", 404, "not_found", "no approval"},
		{"an unknown id to approve", "POST", "/api/v1/approvals/apr_00000000-0000-0000-0000-000000000000/approve", "", 404, "not_found", "no approval"},
		{"a malformed id", "GET", "/api/v1/approvals/not-an-id", "", 400, "invalid", "is not an approval id"},
		{"malformed JSON", "POST", approve, `{"comment":`, 400, "invalid", "not valid JSON"},
		{"an unknown field", "POST", approve, `{"comment":"ok","as":"root"}`, 400, "invalid", `unknown field "as"`},
		{"a comment of the wrong type", "POST", approve, `{"comment":5}`, 400, "invalid", "comment must be a string"},
		{"an array body", "POST", approve, `["ok"]`, 400, "invalid", "must be a JSON object"},
		{"two JSON values", "POST", approve, `{"comment":"a"}{"comment":"b"}`, 400, "invalid", "more than one JSON value"},
		{"a comment too long", "POST", approve, `{"comment":"` + strings.Repeat("x", 2001) + `"}`, 400, "invalid", "the limit is 2000"},
		{"an oversized body", "POST", approve, `{"comment":"` + strings.Repeat("x", 20000) + `"}`, 413, "too_large", "the limit is"},
		{"a bad state filter", "GET", "/api/v1/approvals?state=maybe", "", 400, "invalid", "state"},
		{"a bad age filter", "GET", "/api/v1/approvals?age=1y", "", 400, "invalid", "age"},
		{"an unknown requester", "GET", "/api/v1/approvals?requester=ghost", "", 400, "invalid", "no member"},
		{"an unknown tool", "GET", "/api/v1/approvals?tool=rm_rf", "", 400, "invalid", "not a tool"},
		{"a zero limit", "GET", "/api/v1/approvals?limit=0", "", 400, "invalid", "limit"},
		{"a huge limit", "GET", "/api/v1/approvals?limit=100000", "", 400, "invalid", "limit"},
		{"an unknown parameter", "GET", "/api/v1/approvals?order=asc", "", 400, "invalid", "unknown filter field"},
		{"parameters on get", "GET", "/api/v1/approvals/" + id + "?x=1", "", 400, "invalid", "no query parameters"},
		{"parameters on approve", "POST", approve + "?comment=hi", "", 400, "invalid", "no query parameters"},
		{"GET on approve", "GET", approve, "", 405, "method_not_allowed", "use POST"},
		{"DELETE on an approval", "DELETE", "/api/v1/approvals/" + id, "", 405, "method_not_allowed", "use GET"},
		{"POST on the list", "POST", "/api/v1/approvals", "{}", 405, "method_not_allowed", "use GET"},
		{"an unknown action", "POST", "/api/v1/approvals/" + id + "/execute", "", 404, "not_found", "no such page"},
	}
	for _, tc := range cases {
		status, out := api(t, e.http.URL, tc.method, tc.path, adminKey, tc.body)
		if status != tc.status || errCode(out) != tc.code || !strings.Contains(errMessage(out), tc.says) {
			t.Errorf("%s: %d %v, want %d %s saying %q", tc.name, status, out, tc.status, tc.code, tc.says)
		}
		if e, _ := out["error"].(map[string]any); e["request_id"] == "" || e["request_id"] == nil {
			t.Errorf("%s: no request id", tc.name)
		}
	}
	if a := e.approval(t, id); a.State != store.ApprovalPending || e.auditCount(t) != before {
		t.Fatalf("bad input changed something: %s, audit %d -> %d", a.State, before, e.auditCount(t))
	}
	// Without a valid key: 401, audited like a refused MCP request.
	for _, key := range []string{"", "ss_nope", wrongSecret(adminKey)} {
		status, out := api(t, e.http.URL, http.MethodGet, "/api/v1/approvals", key, "")
		if status != http.StatusUnauthorized || errCode(out) != "unauthenticated" {
			t.Errorf("key %q: %d %v", key, status, out)
		}
	}
	if ev := e.lastAudit(t); ev.Source != store.SourceAPI || ev.Decision != store.DecisionDenied || ev.Reason != "wrong secret" {
		t.Errorf("refused API key audit = %+v", ev)
	}
}

func TestApprovalPagesSendSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
	id := requestApproval(t, e, agentKey, 60)
	w := newWeb(t, e.http.URL, nil)
	check := func(what string, resp *http.Response) {
		t.Helper()
		want := map[string]string{
			"Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'",
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           "no-store",
		}
		for h, v := range want {
			if !strings.HasPrefix(resp.Header.Get(h), v) {
				t.Errorf("%s: %s = %q, want %q", what, h, resp.Header.Get(h), v)
			}
		}
	}
	resp, _ := w.get("/approvals")
	check("redirect to sign-in", resp)
	resp, body := w.get("/approvals/login")
	check("sign-in page", resp)
	if !strings.Contains(body, `<meta name="viewport" content="width=device-width, initial-scale=1">`) || !strings.Contains(body, `<html lang="en">`) || strings.Contains(body, "<script") || strings.Contains(body, "style=") {
		t.Error("the sign-in page lacks the viewport or language, or has script or inline style")
	}
	resp, _ = w.post("/approvals/login", url.Values{"key": {adminKey}, "csrf": {w.csrf}})
	check("sign-in", resp)
	for _, path := range []string{"/approvals?state=pending", "/approvals/" + id, "/approvals/nope/x/y", "/approvals?state=bad"} {
		resp, body := w.get(path)
		check(path, resp)
		if strings.Contains(body, "<script") || strings.Contains(body, "style=") || !strings.Contains(body, `<main id="main"`) {
			t.Errorf("%s has script or inline style, or no main landmark", path)
		}
	}
	resp, css := w.get("/approvals/static/style.css")
	check("style sheet", resp)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(css, ":focus-visible") || !strings.Contains(css, "@media (max-width") {
		t.Errorf("style sheet: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, path := range []string{"/api/v1/approvals", "/api/v1/approvals/" + id} {
		req, _ := http.NewRequest(http.MethodGet, e.http.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		check(path, resp)
	}
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/api/v1/approvals", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check("unauthenticated API", resp)
}

func TestRevokedKeyEndsItsWebSession(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, admin := e.key(t, "alice", "admin", store.KindUser, nil)
	id := requestApproval(t, e, agentKey, 60)
	w := newWeb(t, e.http.URL, nil)
	w.signIn(adminKey)
	w.get("/approvals/" + id)
	session := w.cookie("signalsmith_session")

	if _, err := e.db.RevokeKey(context.Background(), e.ws.ID, admin.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, body := w.post("/approvals/"+id+"/decide", url.Values{"csrf": {w.csrf}, "decision": {"approve"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "revoked or expired") {
		t.Errorf("POST after revocation: %d\n%s", resp.StatusCode, body)
	}
	// The session is gone for good, also when the cookie is presented again.
	again := newWeb(t, e.http.URL, nil)
	again.c.Jar.SetCookies(mustURL(t, e.http.URL+"/approvals/"), []*http.Cookie{session})
	if resp, _ := again.get("/approvals"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/approvals/login") {
		t.Errorf("GET after revocation: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if a := e.approval(t, id); a.State != store.ApprovalPending {
		t.Errorf("a revoked key's session decided: %s", a.State)
	}
}

func TestSignOutEndsTheSession(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
	w := newWeb(t, e.http.URL, nil)
	w.signIn(adminKey)
	_, body := w.get("/approvals")
	if !strings.Contains(body, `action="/approvals/logout"`) {
		t.Fatal("no sign-out form")
	}
	session := w.cookie("signalsmith_session")
	resp, _ := w.post("/approvals/logout", url.Values{"csrf": {w.csrf}})
	if resp.StatusCode != http.StatusSeeOther || w.cookie("signalsmith_session") != nil {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	again := newWeb(t, e.http.URL, nil)
	again.c.Jar.SetCookies(mustURL(t, e.http.URL+"/approvals/"), []*http.Cookie{session})
	if resp, _ := again.get("/approvals"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the old session still works after sign-out: %d", resp.StatusCode)
	}
}

// receiver is an approval webhook endpoint that records what it got.
type receiver struct {
	mu   sync.Mutex
	msgs []map[string]any
	raw  []string
	got  chan struct{}
}

func newReceiver(t *testing.T, status int, hold <-chan struct{}) (*receiver, *httptest.Server) {
	rc := &receiver{got: make(chan struct{}, 100)}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		rc.mu.Lock()
		rc.msgs = append(rc.msgs, m)
		rc.raw = append(rc.raw, string(body))
		rc.mu.Unlock()
		rc.got <- struct{}{}
		if hold != nil {
			<-hold
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(hs.Close)
	return rc, hs
}

// waitFor waits until the receiver saw an event, or fails.
func (rc *receiver) waitFor(t *testing.T, event string) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		rc.mu.Lock()
		for _, m := range rc.msgs {
			if m["event"] == event {
				rc.mu.Unlock()
				return m
			}
		}
		rc.mu.Unlock()
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatalf("no %s notification", event)
			return nil
		}
	}
}

func TestWebhookHearsOfCreatedAndDecidedApprovals(t *testing.T) {
	t.Parallel()
	rc, hook := newReceiver(t, http.StatusOK, nil)
	e := setup(t, withPolicies(t, testPolicies), func(c *server.Config) { c.ApprovalWebhook = hook.URL + "/services/T000/B000/secret-token" })
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
	id := requestApproval(t, e, agentKey, 60)

	m := rc.waitFor(t, "approval.created")
	if m["approval_id"] != id || m["tool"] != "preview_model" || m["state"] != store.ApprovalPending ||
		m["url"] != "https://signalsmith.example/approvals/"+id || !strings.Contains(m["text"].(string), id) ||
		!strings.Contains(m["reason"].(string), "large customer previews need a human") {
		t.Errorf("created notification = %v", m)
	}
	if status, out := api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+id+"/approve", adminKey, `{"comment":"call 555-0100 first"}`); status != http.StatusOK {
		t.Fatalf("approve: %d %v", status, out)
	}
	rc.waitFor(t, "approval.approved")
	done := rc.waitFor(t, "approval.succeeded")
	if done["approval_id"] != id {
		t.Errorf("succeeded notification = %v", done)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, raw := range rc.raw {
		for _, secret := range []string{"555-0100", "alice", "agent-1", "row_count", agentKey[16:], adminKey[16:], "customers\"", "limit"} {
			if strings.Contains(raw, secret) {
				t.Errorf("a notification carries %q: %s", secret, raw)
			}
		}
	}
}

func TestFailingWebhookNeverBlocksTheQueue(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	rc, hook := newReceiver(t, http.StatusInternalServerError, hold)
	t.Cleanup(func() { close(hold) })
	e := setup(t, withPolicies(t, testPolicies), func(c *server.Config) { c.ApprovalWebhook = hook.URL })
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)

	// The receiver holds every request open: the agent's call and the
	// approval still complete while the notification is stuck.
	id := requestApproval(t, e, agentKey, 60)
	select {
	case <-rc.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook was never called")
	}
	status, out := api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+id+"/approve", adminKey, "")
	if status != http.StatusOK || out["state"] != store.ApprovalSucceeded {
		t.Fatalf("approve while the webhook hangs: %d %v", status, out)
	}
	if strings.Contains(e.logs.String(), "secret") {
		t.Error("the log shows the webhook URL")
	}
}

func TestBadWebhookURLStopsStartup(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, bad := range []string{"ftp://example.com/x", "not a url", "https://user:pw@example.com/x", "/relative"} {
		// The warehouse is not used while the server is built.
		_, err := server.New(server.Config{Store: e.db, Warehouse: unusedWarehouse{}, RBAC: e.rbac, ApprovalWebhook: bad})
		if err == nil || !strings.Contains(err.Error(), "approval webhook") {
			t.Errorf("webhook %q: %v", bad, err)
		}
	}
}

// unusedWarehouse satisfies store.Warehouse for a server that never queries.
type unusedWarehouse struct{ store.Warehouse }
