package server_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
	"golang.org/x/crypto/bcrypt"
)

// Identity: every agent acts for one human, one person is one member, an
// agent never exceeds its human, MCP sessions belong to the key that opened
// them, and the approval surfaces refuse DNS rebinding.

// newKey is a fresh key's parts, for creating keys the harness does not.
func newKey(t *testing.T) (full, prefix string, hash []byte) {
	t.Helper()
	full, prefix, hash, err := server.NewKeySecret(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return full, prefix, hash
}

func TestStoreRefusesAgentsWithoutAnOwningHuman(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.key(t, "hugo", "admin", store.KindUser, nil)
	e.key(t, "robo", "member", store.KindAgent, nil)
	cases := []struct {
		name, owner string
		want        error
	}{
		{"no owner", "", store.ErrInvalid},
		{"an owner nobody is", "nobody", store.ErrInvalid},
		{"an agent as owner", "robo", store.ErrInvalid},
		{"a human owner", "hugo", nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, prefix, hash := newKey(t)
			name := "bot-" + string(rune('a'+i))
			_, err := e.db.CreateKey(ctx, store.NewKey{WorkspaceID: e.ws.ID, MemberName: name, Kind: store.KindAgent,
				Role: "member", OwnerName: tc.owner, Prefix: prefix, Hash: hash})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("agent key with %s: %v, want %v", tc.name, err, tc.want)
			}
			members, err := e.db.Members(ctx, e.ws.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range members {
				if m.Name == name && (tc.want != nil || m.OwnerID == "") {
					t.Errorf("member %s stored with owner %q after %v", name, m.OwnerID, tc.want)
				}
			}
		})
	}
}

// legacyAgent stores an agent member without an owner and a key for it, as
// databases from before owners were required hold them, and returns the key.
func (e *env) legacyAgent(t *testing.T, name, role string) string {
	t.Helper()
	full, prefix, hash := newKey(t)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, "signalsmith.db")+"?_pragma=busy_timeout(5000)&_time_format=sqlite")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO members (id, workspace_id, name, kind, role, created_at) VALUES (?, ?, ?, 'agent', ?, ?)`,
			[]any{"mem_" + name, e.ws.ID, name, role, now}},
		{`INSERT INTO api_keys (id, workspace_id, member_id, name, kind, prefix, hash, created_at) VALUES (?, ?, ?, ?, 'agent', ?, ?, ?)`,
			[]any{"key_" + name, e.ws.ID, "mem_" + name, name, prefix, hash, now}},
		{`UPDATE rbac_version SET version = version + 1 WHERE id = 1`, nil},
	} {
		if _, err := db.Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return full
}

func TestOwnerlessAgentFromAnOlderDatabaseIsDenied(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	key := e.legacyAgent(t, "old-bot", "owner")
	c := e.client(t, key)

	list, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tools) != 0 {
		t.Errorf("an owner-less agent sees %d tools, want none", len(list.Tools))
	}
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"list_models", map[string]any{}},
		{"preview_model", map[string]any{"model": "customers"}},
		{"search_audit", map[string]any{}},
		{"check_action", map[string]any{"tool": "list_models", "arguments": map[string]any{}}},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			res := call(t, c, tc.tool, tc.args)
			if !res.IsError || !strings.Contains(text(res), "--owner") {
				t.Errorf("%s by an owner-less agent: error=%v %q, want a denial that says to recreate the key with --owner", tc.tool, res.IsError, text(res))
			}
			if ev := e.lastAudit(t); ev.Tool != tc.tool || ev.Decision != store.DecisionDenied || ev.ActorName != "old-bot" {
				t.Errorf("audit: %+v", ev)
			}
		})
	}

	// Naming its human, as the message says, puts the agent back to work,
	// within what the human may do.
	e.key(t, "mona", "member", store.KindUser, nil)
	_, prefix, hash := newKey(t)
	if _, err := e.db.CreateKey(context.Background(), store.NewKey{WorkspaceID: e.ws.ID, MemberName: "old-bot", Kind: store.KindAgent,
		Role: "owner", OwnerName: "mona", Prefix: prefix, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	if res := call(t, c, "list_models", map[string]any{}); res.IsError {
		t.Errorf("list_models after the agent got its human: %s", text(res))
	}
	if res := call(t, c, "search_audit", map[string]any{}); !res.IsError {
		t.Error("search_audit allowed beyond the member human")
	}
}

func TestApprovalOfAnOwnerlessAgentCannotBeDecided(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	adminKey, _ := e.key(t, "ada", "admin", store.KindUser, nil)
	ownerKey, _ := e.key(t, "otto", "owner", store.KindUser, nil)
	// An approval an owner-less agent queued before owners were required:
	// whoever runs that agent could approve it as anyone but "the owner".
	args, hash, err := approvals.Canonical([]byte(`{"model":"customers"}`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.db.CreateApproval(ctx, store.Approval{WorkspaceID: e.ws.ID, Tool: "preview_model", Args: args,
		ArgsHash: hash, RequesterID: "mem_ghost", RequesterName: "ghost", RequesterKind: store.KindAgent, KeyPrefix: "ss_ghostghost0",
		Source: store.SourceAI, PolicyVersion: "v", Rules: []string{"r"}, Reason: "test", CreatedAt: time.Now().UTC(),
		ExpiresAt: time.Now().Add(time.Hour).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ who, key string }{{"an admin", adminKey}, {"an owner", ownerKey}} {
		status, out := api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+a.ID+"/approve", tc.key, `{"comment":"ok"}`)
		if status != http.StatusForbidden || !strings.Contains(errMessage(out), "no human") {
			t.Errorf("%s approving an owner-less agent's request: %d %v", tc.who, status, out)
		}
	}
	if got := e.approval(t, a.ID); got.State != store.ApprovalPending {
		t.Errorf("approval moved to %s", got.State)
	}
}

func TestOnePersonIsOneUserMember(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	create := func(name, kind, email, owner string) error {
		_, prefix, hash := newKey(t)
		_, err := e.db.CreateKey(ctx, store.NewKey{WorkspaceID: e.ws.ID, MemberName: name, Kind: kind, Role: "admin",
			Email: email, OwnerName: owner, Prefix: prefix, Hash: hash})
		return err
	}
	if err := create("pat", store.KindUser, "Pat@Example.com", ""); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, member, kind, email string
		want                      error
	}{
		{"the same email again", "pat-2", store.KindUser, "Pat@Example.com", store.ErrConflict},
		{"the same email in another case", "pat-3", store.KindUser, "pAT@example.COM", store.ErrConflict},
		{"a new user without an email", "nomail", store.KindUser, "", store.ErrInvalid},
		{"a malformed email", "badmail", store.KindUser, "Pat <pat@example.com>", store.ErrInvalid},
		{"an email on an agent", "mailbot", store.KindAgent, "bot@example.com", store.ErrInvalid},
		{"another person", "quinn", store.KindUser, "quinn@example.com", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			owner := ""
			if tc.kind == store.KindAgent {
				owner = "pat"
			}
			err := create(tc.member, tc.kind, tc.email, owner)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	members, err := e.db.Members(ctx, e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	emails := map[string]string{}
	for _, m := range members {
		emails[m.Name] = m.Email
	}
	if emails["pat"] != "pat@example.com" || emails["quinn"] != "quinn@example.com" {
		t.Errorf("stored emails %v, want them lowercased", emails)
	}
	for _, n := range []string{"pat-2", "pat-3", "nomail", "badmail", "mailbot"} {
		if _, ok := emails[n]; ok {
			t.Errorf("refused member %s was stored", n)
		}
	}
}

// agentWithHuman creates a human with humanRole and an agent with agentRole acting
// for it, and returns the human's member id and the agent's key.
func (e *env) agentWithHuman(t *testing.T, human, humanRole, agentRole string) (string, string) {
	t.Helper()
	_, hk := e.key(t, human, humanRole, store.KindUser, nil)
	full, prefix, hash := newKey(t)
	if _, err := e.db.CreateKey(context.Background(), store.NewKey{WorkspaceID: e.ws.ID, MemberName: human + "-bot",
		Kind: store.KindAgent, Role: agentRole, OwnerName: human, Prefix: prefix, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	return hk.MemberID, full
}

func toolNames(t *testing.T, e *env, key string) map[string]bool {
	t.Helper()
	list, err := e.client(t, key).ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, tl := range list.Tools {
		out[tl.Name] = true
	}
	return out
}

func TestAgentNeverExceedsItsHumansRole(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	ctx := context.Background()
	cases := []struct {
		name, human, humanRole, agentRole string
		audit                             bool // may search_audit (audit.read)
	}{
		{"member human, owner agent", "mo", "member", "owner", false},
		{"member human, admin agent", "ma", "member", "admin", false},
		{"admin human, member agent", "am", "admin", "member", false},
		{"owner human, admin agent", "oa", "owner", "admin", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, key := e.agentWithHuman(t, tc.human, tc.humanRole, tc.agentRole)
			c := e.client(t, key)
			res := call(t, c, "search_audit", map[string]any{"limit": 1})
			if res.IsError == tc.audit {
				t.Errorf("search_audit: error=%v %q, want allowed=%v", res.IsError, text(res), tc.audit)
			}
			if got := toolNames(t, e, key)["search_audit"]; got != tc.audit {
				t.Errorf("tools/list shows search_audit=%v, want %v", got, tc.audit)
			}
			// Ordinary work still works.
			if res := call(t, c, "list_models", map[string]any{}); res.IsError {
				t.Errorf("list_models: %s", text(res))
			}
		})
	}

	// A change of the human's role applies at the agent's next call.
	humanID, key := e.agentWithHuman(t, "rolf", "member", "owner")
	c := e.client(t, key)
	if res := call(t, c, "search_audit", map[string]any{"limit": 1}); !res.IsError {
		t.Fatal("search_audit allowed beyond the member human")
	}
	if err := e.db.SetMemberRole(ctx, e.ws.ID, humanID, "owner"); err != nil {
		t.Fatal(err)
	}
	if res := call(t, c, "search_audit", map[string]any{"limit": 1}); res.IsError {
		t.Errorf("after the human became owner: %s", text(res))
	}
	if err := e.db.SetMemberRole(ctx, e.ws.ID, humanID, "member"); err != nil {
		t.Fatal(err)
	}
	if res := call(t, c, "search_audit", map[string]any{"limit": 1}); !res.IsError {
		t.Error("search_audit still allowed after the human went back to member")
	}
}

func TestAgentInheritsItsHumansAccessFilters(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	ctx := context.Background()
	emeaCount := e.warehouseCount(t, "SELECT count(*) FROM customers WHERE region = 'EMEA'")
	emeaPro := e.warehouseCount(t, "SELECT count(*) FROM customers WHERE region = 'EMEA' AND plan = 'pro'")
	if emeaCount == 0 || emeaCount > 100 || emeaPro == 0 || emeaPro == emeaCount {
		t.Fatalf("%d EMEA and %d EMEA pro customers: the test needs some of each, at most 100", emeaCount, emeaPro)
	}
	humanID, key := e.agentWithHuman(t, "erin", "admin", "member")
	if _, err := e.db.PutAccessFilter(ctx, store.AccessFilter{WorkspaceID: e.ws.ID, Group: "emea-team",
		Table: "analytics.customers", Column: "region", Operator: store.FilterEquals, Value: "EMEA"}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.AddToGroup(ctx, e.ws.ID, humanID, "emea-team"); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, key)

	preview := func(t *testing.T) (rows, emea, pro int) {
		t.Helper()
		var p previewResult
		structured(t, call(t, c, "preview_model", map[string]any{"model": "customers", "limit": 100}), &p)
		for _, row := range p.Rows {
			if row["region"] == "EMEA" {
				emea++
			}
			if row["plan"] == "pro" {
				pro++
			}
		}
		return len(p.Rows), emea, pro
	}
	t.Run("the human's filter", func(t *testing.T) {
		if rows, emea, _ := preview(t); rows != emeaCount || emea != rows {
			t.Errorf("agent of an EMEA human previews %d rows, %d EMEA; want %d, all EMEA", rows, emea, emeaCount)
		}
	})
	t.Run("schema-qualified SQL is refused as for the human", func(t *testing.T) {
		res := call(t, c, "create_model", map[string]any{"name": "everyone", "sql": "select * from analytics.customers", "primary_key": "customer_id"})
		if !res.IsError {
			t.Errorf("an agent of a filtered human read analytics.customers unfiltered: %s", text(res))
		}
	})
	t.Run("its own filter and the human's", func(t *testing.T) {
		members, err := e.db.Members(ctx, e.ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.PutAccessFilter(ctx, store.AccessFilter{WorkspaceID: e.ws.ID, Group: "pro-only",
			Table: "analytics.customers", Column: "plan", Operator: store.FilterEquals, Value: "pro"}); err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			if m.Name == "erin-bot" {
				if err := e.db.AddToGroup(ctx, e.ws.ID, m.ID, "pro-only"); err != nil {
					t.Fatal(err)
				}
			}
		}
		if rows, emea, pro := preview(t); rows != emeaPro || emea != rows || pro != rows {
			t.Errorf("agent previews %d rows (%d EMEA, %d pro), want the %d EMEA pro customers", rows, emea, pro, emeaPro)
		}
	})
}

// rawMCP sends one JSON-RPC message to /mcp over a 2025 protocol version,
// which has sessions, and returns the status and the session id answered.
func rawMCP(t *testing.T, e *env, method, key, session, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	// A listening GET that is let in streams until the client hangs up:
	// the deadline turns that into a failure instead of a hung test.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, e.url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && method == http.MethodGet {
		return resp.StatusCode, "" // a stream: do not wait for its end
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id")
}

func TestMCPSessionsBelongToTheKeyThatOpenedThem(t *testing.T) {
	t.Parallel()
	e := setup(t)
	keyA, _ := e.key(t, "alpha", "member", store.KindAgent, nil)
	keyB, _ := e.key(t, "beta", "member", store.KindAgent, nil)
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	const listTools = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	open := func(t *testing.T, key string) string {
		t.Helper()
		status, id := rawMCP(t, e, http.MethodPost, key, "", initialize)
		if status != http.StatusOK || id == "" {
			t.Fatalf("initialize: %d, session %q", status, id)
		}
		return id
	}
	sessA := open(t, keyA)
	if status, _ := rawMCP(t, e, http.MethodPost, keyA, sessA, listTools); status != http.StatusOK {
		t.Fatalf("key A in its own session: %d", status)
	}
	before := len(e.audit(t))
	cases := []struct {
		name, method, key, session, body string
		want                             int
	}{
		{"key B calls in A's session", http.MethodPost, keyB, sessA, listTools, http.StatusNotFound},
		{"key B listens in A's session", http.MethodGet, keyB, sessA, "", http.StatusNotFound},
		{"key B deletes A's session", http.MethodDelete, keyB, sessA, "", http.StatusNotFound},
		{"a made-up session id", http.MethodPost, keyA, "mcp-session-00000000-0000-0000-0000-000000000000", listTools, http.StatusNotFound},
		{"key A still uses its session", http.MethodPost, keyA, sessA, listTools, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if status, _ := rawMCP(t, e, tc.method, tc.key, tc.session, tc.body); status != tc.want {
				t.Errorf("%s: %d, want %d", tc.name, status, tc.want)
			}
		})
	}
	refused := 0
	for _, ev := range e.audit(t)[before:] {
		if ev.Decision == store.DecisionDenied && ev.Action == "mcp.session" {
			refused++
			if ev.ActorName == "beta" && ev.SessionID != sessA {
				t.Errorf("refusal of key B names session %q, want %q", ev.SessionID, sessA)
			}
		}
	}
	if refused != 4 {
		t.Errorf("%d refused session uses audited, want 4", refused)
	}

	// Key A ends its session; the id is dead for everyone after that.
	if status, _ := rawMCP(t, e, http.MethodDelete, keyA, sessA, ""); status != http.StatusOK {
		t.Fatalf("key A deletes its session: %d", status)
	}
	if status, _ := rawMCP(t, e, http.MethodPost, keyA, sessA, listTools); status != http.StatusNotFound {
		t.Errorf("a deleted session id was used: %d", status)
	}
}

func TestApprovalSurfacesRefuseDNSRebinding(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	adminKey, _ := e.key(t, "andy", "admin", store.KindUser, nil)
	agentKey, _ := e.key(t, "quincy", "member", store.KindAgent, nil)
	id := requestApproval(t, e, agentKey, 60)
	send := func(method, path, host, origin, body string) int {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, e.http.URL+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		name, method, path, host, origin, body string
		want                                   int
	}{
		{"the web queue under a rebinding Host", http.MethodGet, "/approvals", "evil.example", "", "", http.StatusForbidden},
		{"an approval page under a rebinding Host", http.MethodGet, "/approvals/" + id, "evil.example:8080", "", "", http.StatusForbidden},
		{"the API under a rebinding Host", http.MethodGet, "/api/v1/approvals", "evil.example", "", "", http.StatusForbidden},
		{"an API decision under a rebinding Host", http.MethodPost, "/api/v1/approvals/" + id + "/approve", "evil.example", "", `{"comment":"x"}`, http.StatusForbidden},
		{"an API decision from a foreign Origin", http.MethodPost, "/api/v1/approvals/" + id + "/approve", "", "https://evil.example", `{"comment":"x"}`, http.StatusForbidden},
		{"the metrics under a rebinding Host", http.MethodGet, "/metrics", "evil.example", "", "", http.StatusForbidden},
		{"the API from loopback", http.MethodGet, "/api/v1/approvals", "", "", "", http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := send(tc.method, tc.path, tc.host, tc.origin, tc.body); got != tc.want {
				t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
			}
		})
	}
	if a := e.approval(t, id); a.State != store.ApprovalPending {
		t.Errorf("a refused request decided the approval: %s", a.State)
	}
}
