package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
)

type previewResult struct {
	Model   string `json:"model"`
	Columns []struct {
		Name string `json:"name"`
		PII  string `json:"pii"`
	} `json:"columns"`
	HiddenColumns []string         `json:"hidden_columns"`
	Rows          []map[string]any `json:"rows"`
	RowCount      int              `json:"row_count"`
}

func TestAgentExploresDemoWithPIIMasked(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, k := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)

	var tables struct {
		Tables []store.Table `json:"tables"`
	}
	structured(t, call(t, c, "list_tables", nil), &tables)
	var names []string
	for _, tb := range tables.Tables {
		names = append(names, tb.QualifiedName())
	}
	for _, want := range []string{"analytics.customers", "analytics.orders", "analytics.events"} {
		if !slices.Contains(names, want) {
			t.Errorf("list_tables = %v, missing %s", names, want)
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, "cdp_audit.") || strings.HasPrefix(n, "main.") {
			t.Errorf("list_tables shows %s, which agents may not read", n)
		}
	}

	res := call(t, c, "preview_model", map[string]any{"model": "customers", "limit": 50})
	var p previewResult
	structured(t, res, &p)
	if p.RowCount != 50 || len(p.Rows) != 50 {
		t.Fatalf("preview returned %d rows, want 50", len(p.Rows))
	}
	masked := 0
	for _, row := range p.Rows {
		for _, col := range []string{"email", "first_name", "last_name"} {
			v, ok := row[col]
			if !ok {
				t.Fatalf("row lacks redacted column %s: %v", col, row)
			}
			if v != nil && v != "***" {
				t.Fatalf("%s shown as %v, want ***", col, v)
			}
			if v == "***" {
				masked++
			}
		}
		for _, col := range []string{"birth_date", "notes"} {
			if _, ok := row[col]; ok {
				t.Fatalf("row shows %s, which must be absent from previews", col)
			}
		}
		if row["state"] == "***" || row["customer_id"] == nil {
			t.Fatalf("non-PII columns must be shown as they are: %v", row)
		}
	}
	if masked == 0 {
		t.Fatal("no redacted value was masked")
	}
	for _, h := range []string{"birth_date", "notes"} {
		if !slices.Contains(p.HiddenColumns, h) {
			t.Errorf("hidden_columns = %v, want %s listed", p.HiddenColumns, h)
		}
	}
	if strings.Contains(text(res), "@example.") {
		t.Errorf("preview text leaks an email address: %s", text(res))
	}

	ev := e.lastAudit(t)
	if ev.Source != store.SourceAI || ev.Tool != "preview_model" || ev.Decision != store.DecisionAllowed ||
		ev.KeyPrefix != k.Prefix || ev.ActorID != k.MemberID || ev.Action != "models.read" || !strings.HasPrefix(ev.ResourceID, "mdl_") {
		t.Errorf("audit event = %+v", ev)
	}
	if ev.Client != "server-test/1.2.3" {
		t.Errorf("audit client = %q, want server-test/1.2.3", ev.Client)
	}
	if ev.Args["model"] != "customers" {
		t.Errorf("audit args = %v", ev.Args)
	}
}

func TestPreviewLimitIsCapped(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	for _, limit := range []int{101, 0 - 1, 100000} {
		res := call(t, c, "preview_model", map[string]any{"model": "customers", "limit": limit})
		if !res.IsError || !strings.Contains(text(res), "between 1 and 100") {
			t.Errorf("limit %d: got %v %q, want an error naming the range", limit, res.IsError, text(res))
		}
	}
	var p previewResult
	structured(t, call(t, c, "preview_model", map[string]any{"model": "orders", "limit": 100}), &p)
	if len(p.Rows) != 100 {
		t.Errorf("limit 100 returned %d rows", len(p.Rows))
	}
}

func TestRoleWithoutPermissionNeitherSeesNorCallsTool(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	if err := e.db.PutRole(ctx, store.Role{WorkspaceID: e.ws.ID, Name: "table-reader", Permissions: []string{"sources.read"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.rbac.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	key, _ := e.key(t, "reader", "table-reader", store.KindAgent, nil)
	c := e.client(t, key)

	list, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"check_action", "describe_table", "list_tables"}) {
		t.Fatalf("tools/list = %v, want only the sources.read tools and check_action", names)
	}

	res := call(t, c, "preview_model", map[string]any{"model": "customers"})
	if !res.IsError || !strings.Contains(text(res), `"models.read"`) {
		t.Fatalf("preview_model without models.read: %v %q, want a denial naming models.read", res.IsError, text(res))
	}
	ev := e.lastAudit(t)
	if ev.Tool != "preview_model" || ev.Decision != store.DecisionDenied || ev.Source != store.SourceAI || !strings.Contains(ev.Reason, "models.read") {
		t.Errorf("audit event = %+v", ev)
	}

	// The member role (DESIGN.md section 5) reads sources, destinations
	// and approvals, and holds every models, audiences and syncs permission.
	memberKey, _ := e.key(t, "member-agent", "member", store.KindAgent, nil)
	list, err = e.client(t, memberKey).ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	want := []string{
		"cancel_approval", "check_action",
		"create_audience", "create_model", "delete_audience", "delete_model",
		"describe_table",
		"get_approval", "get_audience", "get_destination", "get_model", "get_sync",
		"list_approvals", "list_audiences", "list_destinations", "list_models", "list_syncs", "list_tables",
		"preview_audience", "preview_model", "update_audience", "update_model",
		"create_sync", "delete_sync", "get_sync_run", "list_sync_runs", "pause_sync", "resume_sync", "trigger_sync", "update_sync",
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("member sees %v, want %v", names, want)
	}
}

func TestRoleChangeAppliesAtOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	key, k := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	if res := call(t, c, "get_model", map[string]any{"model": "customers"}); res.IsError {
		t.Fatalf("get_model as member: %s", text(res))
	}
	if err := e.db.PutRole(ctx, store.Role{WorkspaceID: e.ws.ID, Name: "nothing", Permissions: []string{}}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.SetMemberRole(ctx, e.ws.ID, k.MemberID, "nothing"); err != nil {
		t.Fatal(err)
	}
	// No reload call: the next request must see the change by itself.
	if res := call(t, c, "get_model", map[string]any{"model": "customers"}); !res.IsError {
		t.Fatal("a member whose role lost models.read could still call get_model")
	}
}

func TestRevokedAndExpiredKeysAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	key, k := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	if res := call(t, c, "list_models", nil); res.IsError {
		t.Fatal(text(res))
	}
	if _, err := e.db.RevokeKey(ctx, e.ws.ID, k.ID, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if _, err := tryCall(c, "list_models", nil); err == nil {
		t.Fatal("a revoked key's call succeeded")
	}
	ev := e.lastAudit(t)
	if ev.Decision != store.DecisionDenied || ev.KeyPrefix != k.Prefix || ev.Tool != "list_models" || ev.Source != store.SourceAI || ev.Reason != "key revoked or expired" {
		t.Errorf("audit of revoked call = %+v", ev)
	}

	soon := time.Now().Add(300 * time.Millisecond).UTC()
	expired, ek := e.key(t, "agent-2", "member", store.KindAgent, &soon)
	time.Sleep(time.Until(soon) + 50*time.Millisecond)
	status, body := post(t, e.url, expired, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tables","arguments":{}}}`)
	if status != http.StatusUnauthorized {
		t.Fatalf("expired key: status %d, want 401", status)
	}
	_, unknownBody := post(t, e.url, "ss_aaaaaaaaaaaa_"+strings.Repeat("a", 52), `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tables","arguments":{}}}`)
	if body != unknownBody {
		t.Errorf("an expired key gets another answer (%s) than an unknown one (%s): that tells a guesser which keys exist", body, unknownBody)
	}
	evs := e.audit(t)
	ev = evs[len(evs)-2]
	if ev.Decision != store.DecisionDenied || ev.KeyPrefix != ek.Prefix || ev.Reason != "key expired" || ev.Tool != "list_tables" {
		t.Errorf("audit of expired call = %+v", ev)
	}
}

func TestBadCredentialsGet401(t *testing.T) {
	t.Parallel()
	e := setup(t)
	good, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	wrongSecret := good[:len(good)-4] + "aaaa"
	if wrongSecret == good {
		wrongSecret = good[:len(good)-4] + "bbbb"
	}
	before := len(e.audit(t))
	for name, key := range map[string]string{
		"missing":      "",
		"malformed":    "not-a-key",
		"wrong secret": wrongSecret,
		"unknown":      "ss_aaaaaaaaaaaa_" + strings.Repeat("a", 52),
	} {
		status, _ := post(t, e.url, key, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
		if status != http.StatusUnauthorized {
			t.Errorf("%s key: status %d, want 401", name, status)
		}
	}
	evs := e.audit(t)[before:]
	if len(evs) != 4 {
		t.Fatalf("%d audit events for 4 refused requests", len(evs))
	}
	for _, ev := range evs {
		if ev.Decision != store.DecisionDenied || ev.Action != "authenticate" || ev.ActorType != "unknown" {
			t.Errorf("audit of refused request = %+v", ev)
		}
	}
}

func TestBadInputGetsClearErrorsAndWritesOnlyAudit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	before := e.counts(t)

	cases := []struct {
		tool string
		args any
		want string
	}{
		{"preview_model", map[string]any{"model": 5}, `invalid argument "model": expected a string`},
		{"preview_model", map[string]any{"model": "customers", "limit": "ten"}, `invalid argument "limit": expected an integer`},
		{"preview_model", map[string]any{"model": "customers", "colour": "red"}, `unknown argument "colour"`},
		{"preview_model", map[string]any{}, `missing required argument "model"`},
		{"preview_model", "customers", "expected a JSON object"},
		{"get_model", map[string]any{"model": "mdl_does_not_exist"}, `model "mdl_does_not_exist" not found: call list_models`},
		{"get_audience", map[string]any{"audience": "aud_nope"}, `audience "aud_nope" not found`},
		{"describe_table", map[string]any{"table": "cdp_audit.audit_events"}, `not found: call list_tables`},
		{"get_sync", map[string]any{"sync": "syn_nope"}, `sync "syn_nope" not found`},
	}
	for _, tc := range cases {
		res := call(t, c, tc.tool, tc.args)
		if !res.IsError || !strings.Contains(text(res), tc.want) {
			t.Errorf("%s(%v) = %v %q, want error containing %q", tc.tool, tc.args, res.IsError, text(res), tc.want)
		}
		ev := e.lastAudit(t)
		if ev.Tool != tc.tool || ev.Decision != store.DecisionFailed {
			t.Errorf("%s(%v): audit = %+v, want a failed event", tc.tool, tc.args, ev)
		}
	}

	// An unknown tool is a protocol error, and still audited.
	if _, err := tryCall(c, "drop_everything", map[string]any{}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown tool: err = %v", err)
	}
	ev := e.lastAudit(t)
	if ev.Tool != "drop_everything" || ev.Decision != store.DecisionDenied || ev.Reason != "unknown tool" {
		t.Errorf("unknown tool audit = %+v", ev)
	}

	// Malformed JSON-RPC and an oversized body are refused over HTTP.
	status, body := post(t, e.url, key, `{"jsonrpc":"2.0","id":1,"method":`)
	if status != http.StatusBadRequest || !strings.Contains(body, "Parse error") {
		t.Errorf("malformed JSON: %d %s", status, body)
	}
	if ev := e.lastAudit(t); ev.Reason != "malformed JSON-RPC request" || ev.Decision != store.DecisionDenied {
		t.Errorf("malformed JSON audit = %+v", ev)
	}
	huge := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_model","arguments":{"model":"` + strings.Repeat("x", 2<<20) + `"}}}`
	status, body = post(t, e.url, key, huge)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "exceeds the limit") {
		t.Errorf("oversized body: %d %s", status, body)
	}
	if ev := e.lastAudit(t); ev.Reason != "request body too large" {
		t.Errorf("oversized body audit = %+v", ev)
	}

	after := e.counts(t)
	wantAudit := before["audit_events"] + len(cases) + 3
	for table, n := range after {
		want := before[table]
		if table == "audit_events" {
			want = wantAudit
		}
		if n != want {
			t.Errorf("%s: %d rows after bad input, want %d", table, n, want)
		}
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	other, _ := e.key(t, "agent-2", "member", store.KindAgent, nil)
	// A key pasted into arguments, a secret-named argument, a revoked key,
	// a wrong key: none of it may reach logs, audit records or results.
	res := call(t, c, "get_model", map[string]any{"model": other})
	if strings.Contains(text(res), other) {
		t.Errorf("a tool result echoes a key: %s", text(res))
	}
	call(t, c, "list_tables", map[string]any{"api_key": other})
	mistyped := other[:len(other)-1] + "z"
	if mistyped == other {
		mistyped = other[:len(other)-1] + "y"
	}
	post(t, e.url, mistyped, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	post(t, e.url, "Basic "+other, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)

	dump, err := json.Marshal(e.audit(t))
	if err != nil {
		t.Fatal(err)
	}
	raw := readAll(t, filepath.Join(e.dir, "signalsmith.db")) + readAll(t, filepath.Join(e.dir, "signalsmith.db-wal"))
	for _, k := range append(e.keys, mistyped) {
		secret := k[16:]
		for where, s := range map[string]string{"logs": e.logs.String(), "audit": string(dump), "database files": raw} {
			if strings.Contains(s, secret) {
				t.Errorf("a key secret appears in the %s", where)
			}
		}
	}
}

func TestDNSRebindingAndOriginAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	for name, mod := range map[string]func(*http.Request){
		"foreign host":   func(r *http.Request) { r.Host = "evil.example.com" },
		"foreign origin": func(r *http.Request) { r.Header.Set("Origin", "http://evil.example.com") },
	} {
		req, _ := http.NewRequest(http.MethodPost, e.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		mod(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, resp.StatusCode)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(e.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
}

func TestStdioAuthenticatesEveryCall(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, k := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.stdioClient(t, key)
	if res := call(t, c, "list_models", nil); res.IsError {
		t.Fatal(text(res))
	}
	if ev := e.lastAudit(t); ev.KeyPrefix != k.Prefix || ev.Decision != store.DecisionAllowed || ev.Source != store.SourceAI {
		t.Errorf("stdio audit = %+v", ev)
	}
	if _, err := e.db.RevokeKey(context.Background(), e.ws.ID, k.Prefix, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	res := call(t, c, "list_models", nil)
	if !res.IsError || !strings.Contains(text(res), "Authentication failed") {
		t.Fatalf("revoked stdio key: %v %q", res.IsError, text(res))
	}
	if ev := e.lastAudit(t); ev.Decision != store.DecisionDenied || ev.Reason != "key revoked or expired" {
		t.Errorf("revoked stdio audit = %+v", ev)
	}
}

// counts returns the row count of every table of the metadata store, read
// through a connection of the test's own.
func (e *env) counts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"workspaces", "members", "roles", "api_keys", "models", "audiences", "destinations", "syncs", "audit_events"} {
		var n int
		if err := e.raw.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

func post(t *testing.T, url, key, body string) (int, string) {
	t.Helper()
	status, _, b := servertest.Send(t, http.MethodPost, url, key, body)
	return status, b
}

func readAll(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}
