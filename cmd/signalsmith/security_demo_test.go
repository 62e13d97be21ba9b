package main

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/server/servertest"
)

// TestDemoAgentCannotWalkAroundTheGuardrails is the security suite's
// summary on serve --demo itself: with the demo's agent key (role member,
// acting for the demo owner), an attacker tries the walks around the
// guardrails the server used to allow, one of each kind, and none works;
// the agent's ordinary work still does. The server package's
// security_*_test.go files hold every variant.
func TestDemoAgentCannotWalkAroundTheGuardrails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := startDemo(t, dir, freeAddr(t), "--scale", "200")
	agent := servertest.Client(t, "http://"+d.addr+"/mcp", d.agentKey(t), "attacker", "1")
	boss := createKeyJSON(t, dir, "--name", "boss", "--role", "admin", "--email", "boss@example.test")

	// The real sensitive values, read from the warehouse file.
	wh, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "warehouse", "analytics.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	var secrets []string
	rows, err := wh.Query(`SELECT email FROM customers WHERE email IS NOT NULL UNION ALL SELECT notes FROM customers WHERE length(notes) > 12`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, v)
	}
	rows.Close()
	if len(secrets) < 100 {
		t.Fatalf("only %d sensitive values in the demo", len(secrets))
	}
	leaks := func(what string, res *mcp.CallToolResult) {
		t.Helper()
		raw, _ := json.Marshal(res)
		for _, s := range secrets {
			if strings.Contains(string(raw), s) {
				t.Fatalf("%s shows the customer value %q", what, s)
			}
		}
	}
	callOK := func(c *client.Client, tool string, args map[string]any) *mcp.CallToolResult {
		t.Helper()
		res := servertest.Call(t, c, tool, args)
		if res.IsError {
			t.Fatalf("%s: %s", tool, servertest.Text(res))
		}
		return res
	}

	// Cause 1: relabel email and notes as none, or hide them in SQL.
	callOK(agent, "update_model", map[string]any{"model": "customers", "columns": []map[string]any{
		{"name": "email", "pii": "none"}, {"name": "notes", "pii": "none"}}})
	leaks("preview of the relabelled customers", callOK(agent, "preview_model", map[string]any{"model": "customers", "limit": 100}))
	callOK(agent, "create_model", map[string]any{"name": "hidden", "primary_key": "customer_id",
		"sql":     "SELECT customer_id, lower(email) AS e, notes || '' AS n FROM customers",
		"columns": []map[string]any{{"name": "e", "pii": "none"}, {"name": "n", "pii": "none"}}})
	// It reads notes, so it is blocked whole: the preview shows nothing.
	if res := servertest.Call(t, agent, "preview_model", map[string]any{"model": "hidden", "limit": 100}); !res.IsError {
		leaks("preview of SQL that hides the columns", res)
		t.Error("a model that reads notes was previewed")
	}
	callOK(agent, "create_model", map[string]any{"name": "hidden_email", "primary_key": "customer_id",
		"sql":     "SELECT customer_id, lower(email) AS e FROM customers",
		"columns": []map[string]any{{"name": "e", "pii": "none"}}})
	leaks("preview of SQL that hides email", callOK(agent, "preview_model", map[string]any{"model": "hidden_email", "limit": 100}))

	// Cause 2: read a value out through an engine error.
	res := servertest.Call(t, agent, "create_model", map[string]any{"name": "probe", "primary_key": "customer_id",
		"sql": "SELECT customer_id, json_extract('{}', email) AS x FROM customers"})
	if !res.IsError {
		t.Fatal("a model that fails on every email was saved")
	}
	leaks("the error of a failing model", res)

	// Cause 3: swap names under a queued delete.
	callOK(agent, "create_model", map[string]any{"name": "scratch", "table": "analytics.events", "primary_key": "event_id"})
	callOK(agent, "create_model", map[string]any{"name": "precious", "table": "analytics.orders", "primary_key": "order_id"})
	var queued struct {
		ApprovalID string `json:"approval_id"`
	}
	servertest.Structured(t, callOK(agent, "delete_model", map[string]any{"model": "scratch"}), &queued)
	callOK(agent, "update_model", map[string]any{"model": "scratch", "name": "scratch_old"})
	callOK(agent, "update_model", map[string]any{"model": "precious", "name": "scratch"})
	out, err := runAs(t, dir, boss.Key, "approvals", "approve", queued.ApprovalID)
	if err != nil || !strings.Contains(out, "ran: failed") || !strings.Contains(out, "changed since it was approved") {
		t.Errorf("the approval of the swapped delete: %v %s; want it failed because the model changed", err, out)
	}
	var survivor struct {
		Table string `json:"table"`
	}
	servertest.Structured(t, callOK(agent, "get_model", map[string]any{"model": "scratch"}), &survivor)
	if survivor.Table != "analytics.orders" {
		t.Errorf("the model now named scratch is over %q; the swapped-in model did not survive", survivor.Table)
	}

	// Cause 7: a JSON-RPC batch mcp-go would drop unaudited.
	before := auditCount(t, dir)
	status, _, _ := servertest.Send(t, http.MethodPost, "http://"+d.addr+"/mcp", d.agentKey(t), `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`)
	if status < 400 {
		t.Errorf("a batch got %d", status)
	}
	if after := auditCount(t, dir); after <= before {
		t.Error("the refused batch left no audit event")
	}

	// Ordinary work: list, masked preview, an audience, a safe SQL model,
	// and a delete queued for a human.
	callOK(agent, "list_models", nil)
	p := callOK(agent, "preview_model", map[string]any{"model": "customers", "limit": 5})
	if raw, _ := json.Marshal(p.StructuredContent); !strings.Contains(string(raw), `"email":"***"`) {
		t.Errorf("preview does not mask emails: %s", raw)
	}
	callOK(agent, "create_audience", map[string]any{"name": "pro in the west", "definition": map[string]any{"model": "customers",
		"conditions": map[string]any{"all": []any{map[string]any{"column": "plan", "operator": "equals", "value": "pro"},
			map[string]any{"column": "region", "operator": "equals", "value": "NA"}}}}})
	callOK(agent, "create_model", map[string]any{"name": "spend", "primary_key": "customer_id",
		"sql": "SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id"})
	servertest.Structured(t, callOK(agent, "delete_model", map[string]any{"model": "spend"}), &queued)
	if queued.ApprovalID == "" {
		t.Error("the delete of a safe model was not queued for a human")
	}
}

// auditCount is the number of audit events signalsmith.db holds.
func auditCount(t *testing.T, dir string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "signalsmith.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM audit_events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
