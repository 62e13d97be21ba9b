package server_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
)

// allowAll is a policy set that lets every call through the guardrails, so
// a test sees what the tools themselves do.
const allowAll = `policies:
  - id: never
    type: deny
    resources: [workspace]
    operations: [delete]
    sources: [SYSTEM]
    message: never applies
`

// modelChange is what create_model and update_model return.
type modelChange struct {
	Model  store.Model `json:"model"`
	Raised []struct {
		Column, Requested, PII string
		Sources                []string
	} `json:"pii_raised"`
	Blocked []string `json:"blocked_columns"`
}

// wrote reports whether ev records a tool call whose change was made: the
// store records it as executed with the change (allowed, when written by
// the gate afterwards).
func wrote(ev store.AuditEvent) bool {
	return ev.Decision == store.DecisionExecuted || ev.Decision == store.DecisionAllowed
}

// warehouseCount runs a count on the test's warehouse file directly: the
// truth tool results are compared with.
func (e *env) warehouseCount(t *testing.T, query string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.whDir, "analytics.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// filteredAgent returns a member agent's key, the agent in a group whose
// access filter lets it see EMEA customers only.
func (e *env) filteredAgent(t *testing.T, name string) (string, store.Key) {
	t.Helper()
	ctx := context.Background()
	key, k := e.key(t, name, "member", store.KindAgent, nil)
	if _, err := e.db.PutAccessFilter(ctx, store.AccessFilter{WorkspaceID: e.ws.ID, Group: "emea-team",
		Table: "analytics.customers", Column: "region", Operator: store.FilterEquals, Value: "EMEA"}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.AddToGroup(ctx, e.ws.ID, k.MemberID, "emea-team"); err != nil {
		t.Fatal(err)
	}
	return key, k
}

func TestAgentCreatesUpdatesAndDeletesModels(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	key, k := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)

	const webOrders = `SELECT o.order_id, o.customer_id, c.email, o.amount, o.channel, o.ordered_at
FROM orders o JOIN customers c USING (customer_id) -- customers named without the schema
WHERE o.channel = 'web'`
	var created modelChange
	structured(t, call(t, c, "create_model", map[string]any{
		"name":        "web_orders",
		"description": "Orders placed on the web, with the buyer's email.",
		"sql":         webOrders,
		"primary_key": "order_id",
		"columns": []map[string]any{
			{"name": "order_id", "pii": "none"},
			{"name": "customer_id", "pii": "none"},
			{"name": "email", "pii": "redacted"},
			{"name": "amount", "pii": "none"},
			{"name": "channel", "pii": "none"},
		},
		"relationships": []map[string]any{{"name": "customer", "model": "customers", "foreign_key": "customer_id", "references": "customer_id"}},
	}), &created)
	m := created.Model
	if !strings.HasPrefix(m.ID, "mdl_") || m.SQL != webOrders || m.Table != "" || m.PrimaryKey != "order_id" {
		t.Fatalf("created = %+v", m)
	}
	wantTypes := map[string]string{"order_id": "integer", "customer_id": "integer", "email": "string", "amount": "number", "channel": "string", "ordered_at": "string"}
	for _, col := range m.Columns {
		if col.Type != wantTypes[col.Name] {
			t.Errorf("column %s has type %q, want %q from the engine", col.Name, col.Type, wantTypes[col.Name])
		}
	}
	// Levels come from the classification of the columns read: email is
	// redacted, ordered_at (not listed in columns) none, as classified.
	if col, _ := m.Column("ordered_at"); col.PII != store.PIINone || len(created.Raised) != 0 || len(created.Blocked) != 0 {
		t.Errorf("ordered_at = %+v, raised %v, blocked %v; want none, nothing raised or blocked", col, created.Raised, created.Blocked)
	}
	if col, _ := m.Column("email"); col.PII != store.PIIRedacted || !slices.Equal(col.Sources, []string{"analytics.customers.email"}) {
		t.Errorf("email = %+v, want redacted from analytics.customers.email", col)
	}
	if len(m.Relationships) != 1 || m.Relationships[0].Model != "customers" {
		t.Errorf("relationships = %+v", m.Relationships)
	}
	ev := e.lastAudit(t)
	if ev.Tool != "create_model" || ev.Action != "models.create" || !wrote(ev) || ev.ResourceID != m.ID || ev.KeyPrefix != k.Prefix ||
		!strings.Contains(ev.Result, "created model web_orders") {
		t.Errorf("audit of create_model = %+v", ev)
	}

	// The preview applies PII levels to the SQL model's rows.
	var p previewResult
	structured(t, call(t, c, "preview_model", map[string]any{"model": "web_orders", "limit": 30}), &p)
	if len(p.Rows) != 30 || len(p.HiddenColumns) != 0 {
		t.Fatalf("preview: %d rows, hidden %v", len(p.Rows), p.HiddenColumns)
	}
	masked := 0
	for _, row := range p.Rows {
		if row["channel"] != "web" {
			t.Fatalf("a row of channel %v", row["channel"])
		}
		switch row["email"] {
		case "***":
			masked++
		case nil:
		default:
			t.Fatalf("email shown as %v", row["email"])
		}
	}
	if masked == 0 {
		t.Error("no email was masked")
	}

	// update_model replaces what it is given; the same update twice is the
	// same model.
	update := map[string]any{
		"model":       m.ID,
		"description": "Web orders.",
		"columns":     []map[string]any{{"name": "ordered_at", "pii": "sync_only", "type": "timestamp"}},
	}
	var updated modelChange
	for range 2 {
		structured(t, call(t, c, "update_model", update), &updated)
	}
	u := updated.Model
	if col, _ := u.Column("ordered_at"); u.Description != "Web orders." || col.PII != store.PIISyncOnly || col.Type != "timestamp" ||
		len(updated.Raised) != 0 || u.SQL != webOrders || !u.CreatedAt.Equal(m.CreatedAt) {
		t.Errorf("updated = %+v", updated)
	}
	// A new SQL: columns that remain keep their requested levels and
	// refined types; the new one takes its classification.
	var resql modelChange
	structured(t, call(t, c, "update_model", map[string]any{
		"model": "web_orders",
		"sql":   "SELECT order_id, customer_id, amount, channel, category, ordered_at FROM orders WHERE channel = 'web'",
	}), &resql)
	if col, _ := resql.Model.Column("ordered_at"); col.PII != store.PIISyncOnly || col.Type != "timestamp" {
		t.Errorf("after a new SQL: %+v", resql)
	}
	if col, _ := resql.Model.Column("category"); col.PII != store.PIINone || len(resql.Blocked) != 0 {
		t.Errorf("after a new SQL: %+v", resql)
	}
	if _, ok := resql.Model.Column("email"); ok {
		t.Error("a column the new SQL lacks is still on the model")
	}
	if ev := e.lastAudit(t); ev.Tool != "update_model" || ev.Action != "models.update" || !wrote(ev) || ev.ResourceID != m.ID || ev.Result != "updated model web_orders" {
		t.Errorf("audit of update_model = %+v", ev)
	}

	// The seeded customers model has audiences, a sync over one of them,
	// and models whose relationships lead to it.
	before := e.counts(t)
	res := call(t, c, "delete_model", map[string]any{"model": "customers"})
	msg := text(res)
	for _, want := range []string{"cannot be deleted", "California pro customers", "syn_", "orders", "events", "web_orders"} {
		if !res.IsError || !strings.Contains(msg, want) {
			t.Errorf("delete_model customers: %v %q, want an error naming %q", res.IsError, msg, want)
		}
	}
	if after := e.counts(t); after["models"] != before["models"] || after["audit_events"] != before["audit_events"]+1 {
		t.Errorf("a refused delete changed the store: %v -> %v", before, after)
	}

	var deleted struct {
		Deleted bool   `json:"deleted"`
		ID      string `json:"id"`
	}
	structured(t, call(t, c, "delete_model", map[string]any{"model": "web_orders"}), &deleted)
	if !deleted.Deleted || deleted.ID != m.ID {
		t.Errorf("delete_model = %+v", deleted)
	}
	if ev := e.lastAudit(t); ev.Tool != "delete_model" || ev.Action != "models.delete" || !wrote(ev) || ev.ResourceID != m.ID || ev.Result != "deleted model web_orders" {
		t.Errorf("audit of delete_model = %+v", ev)
	}
	if res := call(t, c, "get_model", map[string]any{"model": m.ID}); !res.IsError || !strings.Contains(text(res), "not found") {
		t.Errorf("get_model after delete: %q", text(res))
	}
	if res := call(t, c, "delete_model", map[string]any{"model": m.ID}); !res.IsError || !strings.Contains(text(res), "not found") {
		t.Errorf("second delete_model: %q", text(res))
	}
}

// TestAgentDeleteNeedsApproval runs delete_model under the default
// policies: an agent's delete waits for a human, and the approved call runs
// through the tool, which still refuses a model in use.
func TestAgentDeleteNeedsApproval(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	structured(t, call(t, c, "create_model", map[string]any{
		"name": "scratch", "table": "analytics.orders", "primary_key": "order_id",
	}), &modelChange{})

	_, adminKey := e.key(t, "admin-1", "admin", store.KindUser, nil)
	admin, err := e.db.Principal(context.Background(), adminKey.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	approve := func(model string) store.Approval {
		t.Helper()
		var q struct {
			ApprovalID string `json:"approval_id"`
		}
		structured(t, call(t, c, "delete_model", map[string]any{"model": model}), &q)
		if q.ApprovalID == "" {
			t.Fatalf("delete_model %s did not wait for approval", model)
		}
		a, err := approvals.NewQueue(e.db, e.rbac, 0).Decide(context.Background(), admin, store.SourceUI, q.ApprovalID, true, "ok")
		if err != nil {
			t.Fatal(err)
		}
		a, err = e.srv.Gate().Execute(context.Background(), a, store.SourceUI)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// A delete that dependents block is refused at once, never queued.
	if res := call(t, c, "delete_model", map[string]any{"model": "customers"}); !res.IsError || !strings.Contains(text(res), "cannot be deleted") {
		t.Errorf("delete of customers: %v %q", res.IsError, text(res))
	}
	if _, err := e.db.GetModel(context.Background(), e.ws.ID, "customers"); err != nil {
		t.Errorf("customers after a refused delete: %v", err)
	}
	if a := approve("scratch"); a.State != store.ApprovalSucceeded {
		t.Errorf("approved delete of scratch: %s %q", a.State, a.Outcome)
	}
	if _, err := e.db.GetModel(context.Background(), e.ws.ID, "scratch"); err == nil {
		t.Error("scratch is still there after an approved delete")
	}
}

func TestAccessFiltersApplyToAgents(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	emeaKey, _ := e.filteredAgent(t, "emea-agent")
	emea := e.client(t, emeaKey)
	otherKey, _ := e.key(t, "agent-2", "member", store.KindAgent, nil)
	other := e.client(t, otherKey)
	emeaCount := e.warehouseCount(t, "SELECT count(*) FROM customers WHERE region = 'EMEA'")
	if emeaCount == 0 || emeaCount >= demoScale || emeaCount > 100 {
		t.Fatalf("%d EMEA customers of %d: the test needs some, and at most 100", emeaCount, demoScale)
	}

	regions := func(t *testing.T, c *previewResult) map[any]int {
		t.Helper()
		out := map[any]int{}
		for _, row := range c.Rows {
			out[row["region"]]++
		}
		return out
	}
	var p previewResult
	structured(t, call(t, emea, "preview_model", map[string]any{"model": "customers", "limit": 100}), &p)
	if got := regions(t, &p); len(got) != 1 || got["EMEA"] != emeaCount {
		t.Errorf("filtered preview of customers: regions %v, want %d EMEA rows only", got, emeaCount)
	}
	structured(t, call(t, other, "preview_model", map[string]any{"model": "customers", "limit": 100}), &p)
	if got := regions(t, &p); len(got) < 2 {
		t.Errorf("unfiltered preview: regions %v, want several", got)
	}

	// SQL written by the filtered member: the table named without its
	// schema is the filtered rows; named with it, the engine refuses.
	before := e.counts(t)
	res := call(t, emea, "create_model", map[string]any{"name": "all_customers", "sql": "select * from analytics.customers", "primary_key": "customer_id"})
	if !res.IsError || !strings.Contains(text(res), "name it without the schema (customers)") {
		t.Errorf("qualified read by a filtered member: %v %q", res.IsError, text(res))
	}
	if after := e.counts(t); after["models"] != before["models"] {
		t.Error("a refused model was stored")
	}
	for _, q := range []string{
		"select * from customers",
		"with c as (select customer_id, region from customers) select c.* from c left join orders o using (customer_id) group by c.customer_id",
		"select customer_id, region from customers where region <> 'EMEA' union all select customer_id, region from customers where region = 'EMEA'",
	} {
		var mc modelChange
		name := "mine_" + strings.Fields(q)[1]
		if strings.HasPrefix(q, "with") {
			name = "mine_cte"
		} else if strings.Contains(q, "union") {
			name = "mine_union"
		}
		structured(t, call(t, emea, "create_model", map[string]any{
			"name": name, "sql": q, "primary_key": "customer_id",
			"columns": []map[string]any{{"name": "customer_id", "pii": "none"}, {"name": "region", "pii": "none"}},
		}), &mc)
		structured(t, call(t, emea, "preview_model", map[string]any{"model": name, "limit": 100}), &p)
		if got := regions(t, &p); len(got) != 1 || got["EMEA"] != emeaCount {
			t.Errorf("%s: the filtered member's SQL model shows regions %v, want %d EMEA rows only", q, got, emeaCount)
		}
		// The same model previewed by a member without filters sees all.
		structured(t, call(t, other, "preview_model", map[string]any{"model": name, "limit": 100}), &p)
		if got := regions(t, &p); len(got) < 2 {
			t.Errorf("%s for an unfiltered member: regions %v", q, got)
		}
	}

	// A model another member wrote with the schema cannot be previewed
	// around the filter.
	structured(t, call(t, other, "create_model", map[string]any{
		"name": "qualified", "sql": "SELECT customer_id, region FROM analytics.customers", "primary_key": "customer_id",
		"columns": []map[string]any{{"name": "customer_id", "pii": "none"}, {"name": "region", "pii": "none"}},
	}), &modelChange{})
	res = call(t, emea, "preview_model", map[string]any{"model": "qualified"})
	if !res.IsError || !strings.Contains(text(res), "the warehouse refused the preview of model qualified") {
		t.Errorf("preview of a qualified SQL model by a filtered member: %v %q", res.IsError, text(res))
	}
	if ev := e.lastAudit(t); ev.Decision != store.DecisionFailed || ev.Tool != "preview_model" {
		t.Errorf("audit of the refused preview = %+v", ev)
	}

	// Row counts of a filtered table would tell how many rows are hidden.
	var tables struct {
		Tables []store.Table `json:"tables"`
	}
	structured(t, call(t, emea, "list_tables", nil), &tables)
	for _, tb := range tables.Tables {
		if tb.Name == "customers" && tb.RowCount != nil || tb.Name == "orders" && tb.RowCount == nil {
			t.Errorf("list_tables for a filtered member: %s row count %v", tb.Name, tb.RowCount)
		}
	}
}

func TestModelToolsRefuseBadInputAndWriteOnlyAudit(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	before := e.counts(t)

	sqlModel := func(query string) map[string]any {
		return map[string]any{"name": "m", "sql": query, "primary_key": "id"}
	}
	refused := "the warehouse refused the model's SQL: "
	cases := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"create_model", map[string]any{"name": "m", "table": "analytics.nope", "primary_key": "id"}, `table "analytics.nope" not found: call list_tables`},
		{"create_model", map[string]any{"name": "m", "table": "cdp_audit.audit_events", "primary_key": "id"}, `table "cdp_audit.audit_events" not found`},
		{"create_model", map[string]any{"name": "m", "table": "analytics.orders", "primary_key": "order_id",
			"columns": []map[string]any{{"name": "amount", "pii": "secret"}}}, `pii "secret" is not a PII level`},
		{"create_model", map[string]any{"name": "m", "table": "analytics.orders", "primary_key": "order_id",
			"columns": []map[string]any{{"name": "nope", "pii": "none"}}}, `column "nope" in columns is not a column of the model`},
		{"create_model", map[string]any{"name": "m", "table": "analytics.orders", "primary_key": "order_id",
			"columns": []map[string]any{{"name": "amount", "pii": "none", "type": "money"}}}, `type "money" is not one of`},
		{"create_model", map[string]any{"name": "m", "table": "analytics.orders", "primary_key": "id"}, `primary_key "id" is not a column of the model`},
		{"create_model", map[string]any{"name": "m", "table": "analytics.orders"}, `missing required argument "primary_key"`},
		{"create_model", map[string]any{"table": "analytics.orders", "primary_key": "order_id"}, `missing required argument "name"`},
		{"create_model", map[string]any{"name": "m", "primary_key": "order_id"}, "give the model a source"},
		{"create_model", map[string]any{"name": "m", "table": "analytics.orders", "sql": "SELECT 1 AS id", "primary_key": "id"}, "not both"},
		{"create_model", map[string]any{"name": "customers", "table": "analytics.customers", "primary_key": "customer_id"}, `a model named "customers" exists already`},
		{"create_model", map[string]any{"name": "m", "table": "analytics.orders", "primary_key": "order_id",
			"relationships": []map[string]any{{"name": "customer", "model": "customers", "foreign_key": "customer_id", "references": "nope"}}},
			`relationship "customer": references "nope" is not a column of model customers`},
		{"create_model", map[string]any{"name": "m", "table": "analytics.orders", "primary_key": "order_id",
			"relationships": []map[string]any{{"name": "customer", "model": "customers", "foreign_key": "nope", "references": "customer_id"}}},
			`relationship "customer": foreign_key "nope" is not a column of this model`},
		{"create_model", map[string]any{"name": "m", "table": "analytics.orders", "primary_key": "order_id",
			"relationships": []map[string]any{{"name": "buyer", "model": "buyers", "foreign_key": "customer_id", "references": "customer_id"}}},
			`relationship "buyer": model "buyers" not found`},
		{"create_model", sqlModel("DELETE FROM orders"), refused + "writes are not allowed"},
		{"create_model", sqlModel("SELECT 1 AS id; SELECT 2 AS id"), refused + "only one statement is allowed"},
		{"create_model", sqlModel("SELECT 1 AS id; DROP TABLE orders"), refused + "only one statement is allowed"},
		{"create_model", sqlModel("SELECT order_id AS id FROM orders;"), refused + "the SQL does not work as a subquery"},
		{"create_model", sqlModel("SELECT order_id AS id FROM orders /* and then"), refused + "the SQL does not work as a subquery"},
		{"create_model", sqlModel("WITH x AS (INSERT INTO orders (customer_id) VALUES (1) RETURNING *) SELECT order_id AS id FROM x"), "syntax error"},
		{"create_model", sqlModel("ATTACH DATABASE 'signalsmith.db' AS s"), refused + "attaching or detaching a database is not allowed"},
		{"create_model", sqlModel("PRAGMA query_only = 0"), refused + "PRAGMA statements are not allowed"},
		{"create_model", sqlModel("SELECT name AS id FROM cdp_audit.sqlite_master"), refused + "table cdp_audit.sqlite_master may not be read"},
		{"create_model", sqlModel("SELECT name AS id FROM sqlite_master"), refused + "table main.sqlite_master may not be read"},
		{"create_model", sqlModel("SELECT count(*) AS id FROM temp.sqlite_master"), refused + "table temp.sqlite_master may not be read"},
		{"create_model", sqlModel("SELECT load_extension('x') AS id"), refused + "function load_extension is not allowed"},
		{"create_model", sqlModel("SELECT customer_id AS id, customer_id AS ID FROM customers"), "appears twice"},
		{"create_model", sqlModel("SELECT nope AS id FROM orders"), "no such column: nope"},
		{"update_model", map[string]any{"model": "mdl_nope", "description": "x"}, `model "mdl_nope" not found`},
		{"update_model", map[string]any{"model": "customers", "name": "clients"}, "would break model"},
		{"update_model", map[string]any{"model": "customers", "sql": "SELECT 1 AS customer_id; SELECT 2"}, refused + "only one statement is allowed"},
		{"update_model", map[string]any{"model": "customers", "sql": "SELECT email FROM customers"}, `primary_key "customer_id" is not a column`},
		{"update_model", map[string]any{"model": "customers", "sql": "SELECT email FROM customers", "primary_key": "email"},
			`relationship "orders": foreign_key "customer_id" is not a column of this model`},
		{"update_model", map[string]any{"model": "customers", "table": ""}, `"table": must not be empty`},
		{"update_model", map[string]any{"model": "customers", "columns": []map[string]any{{"name": "email", "pii": "public"}}}, `pii "public" is not a PII level`},
		{"delete_model", map[string]any{"model": "mdl_nope"}, `model "mdl_nope" not found`},
		{"delete_model", map[string]any{"model": "orders"}, "cannot be deleted"},
	}
	for _, tc := range cases {
		res := call(t, c, tc.tool, tc.args)
		if !res.IsError || !strings.Contains(text(res), tc.want) {
			t.Errorf("%s(%v) = %v %q, want an error containing %q", tc.tool, tc.args, res.IsError, text(res), tc.want)
		}
		if strings.Contains(text(res), "Internal error") || strings.Contains(text(res), "ss_") {
			t.Errorf("%s(%v): the error carries internal detail: %q", tc.tool, tc.args, text(res))
		}
		ev := e.lastAudit(t)
		if ev.Tool != tc.tool || ev.Decision != store.DecisionFailed {
			t.Errorf("%s(%v): audit = %+v, want a failed event", tc.tool, tc.args, ev)
		}
	}
	after := e.counts(t)
	for table, n := range after {
		want := before[table]
		if table == "audit_events" {
			want += len(cases)
		}
		if n != want {
			t.Errorf("%s: %d rows after bad input, want %d", table, n, want)
		}
	}
	m, err := e.db.GetModel(context.Background(), e.ws.ID, "customers")
	if err != nil || m.Table != "analytics.customers" || m.PrimaryKey != "customer_id" {
		t.Errorf("customers after refused updates: %+v, %v", m, err)
	}
}

func TestQueryLimitsThroughTools(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll), func(c *server.Config) {
		c.Limits = store.QueryLimits{Timeout: 300 * time.Millisecond, MaxRows: 7}
	})
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	const endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) AS id FROM n"

	// Checking the SQL runs it: the check is cancelled at the limit.
	before := e.counts(t)
	start := time.Now()
	res := call(t, c, "create_model", map[string]any{"name": "endless", "sql": endless, "primary_key": "id"})
	want := "the query took longer than 300ms and was cancelled; narrow it"
	if !res.IsError || !strings.Contains(text(res), want) {
		t.Errorf("create_model over the time limit: %v %q", res.IsError, text(res))
	}
	if after := e.counts(t); after["models"] != before["models"] {
		t.Error("a model whose check timed out was stored")
	}

	// A stored model whose query runs too long.
	if _, err := e.db.CreateModel(context.Background(), store.Model{WorkspaceID: e.ws.ID, Name: "endless", SQL: endless,
		PrimaryKey: "id", Columns: []store.Column{{Name: "id", Type: "integer", Lineage: store.LineageExpression, Sources: []string{}}}}); err != nil {
		t.Fatal(err)
	}
	res = call(t, c, "preview_model", map[string]any{"model": "endless"})
	if !res.IsError || !strings.Contains(text(res), want) {
		t.Errorf("preview over the time limit: %v %q", res.IsError, text(res))
	}
	if ev := e.lastAudit(t); ev.Decision != store.DecisionFailed || !strings.Contains(ev.Reason, "cancelled") {
		t.Errorf("audit of the cancelled preview = %+v", ev)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("two cancelled queries took %s: they were not cancelled at their limit", d)
	}

	// The row cap applies to previews too, and says so.
	var p struct {
		previewResult
		Truncated bool `json:"truncated"`
	}
	structured(t, call(t, c, "preview_model", map[string]any{"model": "orders", "limit": 20}), &p)
	if len(p.Rows) != 7 || !p.Truncated {
		t.Errorf("preview with a row cap of 7: %d rows, truncated %v", len(p.Rows), p.Truncated)
	}
}
