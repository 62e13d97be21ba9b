package server_test

import (
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/signalsmith/agent-server/store"
)

// Cause 1 of the security suite: agents cannot choose PII levels. A model
// column's level is derived by the engine from the classified source
// columns it reads; whatever an agent asks for, with a table model, a
// relabelling update or any SQL that hides a column in an expression, no
// real email, sync_only birth date or blocked note reaches it.

// secretValues are real values of the demo's redacted, sync_only and
// blocked columns, read from the warehouse file directly, in the forms an
// attacker's SQL could return them (as they are, lowercased, in hex).
func (e *env) secretValues(t *testing.T) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.whDir, "analytics.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT email, birth_date, notes FROM customers WHERE email IS NOT NULL AND birth_date IS NOT NULL AND notes IS NOT NULL AND notes <> '' LIMIT 20`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var email, birth, notes string
		if err := rows.Scan(&email, &birth, &notes); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{email, birth, notes} {
			out = append(out, v, strings.ToLower(v), strings.ToUpper(hex.EncodeToString([]byte(v))))
		}
	}
	if len(out) == 0 {
		t.Fatal("the demo has no customers with every sensitive column set")
	}
	return out
}

// assertNoSecrets fails if a preview of model shows any secret value.
func assertNoSecrets(t *testing.T, c *client.Client, model string, secrets []string) previewResult {
	t.Helper()
	var p previewResult
	res := call(t, c, "preview_model", map[string]any{"model": model, "limit": 100})
	if res.IsError {
		// A model with nothing a preview may show is an answer too.
		if !strings.Contains(text(res), "no columns a preview may show") {
			t.Fatalf("preview %s: %s", model, text(res))
		}
		return p
	}
	structured(t, res, &p)
	body := fmt.Sprint(p.Rows)
	for _, s := range secrets {
		if strings.Contains(body, s) {
			t.Fatalf("preview of %s shows the sensitive value %q", model, s)
		}
	}
	return p
}

func TestSecurityPIIRelabellingIsRaised(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	secrets := e.secretValues(t)

	// update_model asks to show email, birth_date and notes as they are.
	var mc modelChange
	structured(t, call(t, c, "update_model", map[string]any{"model": "customers", "columns": []map[string]any{
		{"name": "email", "pii": "none"}, {"name": "birth_date", "pii": "none"}, {"name": "notes", "pii": "none"},
	}}), &mc)
	want := map[string]string{"email": store.PIIRedacted, "birth_date": store.PIISyncOnly, "notes": store.PIIBlocked}
	for name, level := range want {
		if col, _ := mc.Model.Column(name); col.PII != level {
			t.Errorf("after relabelling, %s = %q, want %q", name, col.PII, level)
		}
	}
	if len(mc.Raised) != 3 {
		t.Errorf("pii_raised = %+v, want email, birth_date and notes", mc.Raised)
	}
	p := assertNoSecrets(t, c, "customers", secrets)
	if len(p.Rows) == 0 {
		t.Fatal("the relabelled model previews nothing")
	}
	for _, row := range p.Rows {
		if v, ok := row["email"]; ok && v != "***" && v != nil {
			t.Fatalf("email shown as %v", v)
		}
	}

	// create_model over the table with the same request.
	structured(t, call(t, c, "create_model", map[string]any{"name": "raw_customers", "table": "analytics.customers", "primary_key": "customer_id",
		"columns": []map[string]any{{"name": "email", "pii": "none"}, {"name": "notes", "pii": "none"}}}), &mc)
	if col, _ := mc.Model.Column("notes"); col.PII != store.PIIBlocked {
		t.Errorf("table model notes = %q, want blocked", col.PII)
	}
	assertNoSecrets(t, c, "raw_customers", secrets)

	// The relabelled blocked column stays unusable in audience conditions.
	def := map[string]any{"model": "customers", "conditions": map[string]any{"column": "notes", "operator": "contains", "value": "a"}}
	for tool, args := range map[string]map[string]any{
		"preview_audience": {"definition": def},
		"create_audience":  {"name": "notes_probe", "definition": def},
	} {
		res := call(t, c, tool, args)
		if !res.IsError || !strings.Contains(text(res), "blocked") {
			t.Errorf("%s with a condition on relabelled notes: %v %q", tool, res.IsError, text(res))
		}
	}
}

func TestSecurityPIISQLModelsCannotHideColumns(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	secrets := e.secretValues(t)
	queries := map[string]string{
		"alias":         "SELECT customer_id, email AS x, birth_date AS b, notes AS n FROM customers",
		"lower":         "SELECT customer_id, lower(email) AS x, lower(notes) AS n FROM customers",
		"substr":        "SELECT customer_id, substr(email, 1) AS x, substr(notes, 1) AS n FROM customers",
		"concat":        "SELECT customer_id, email || '' AS x, '' || notes AS n, birth_date || '' AS b FROM customers",
		"hex":           "SELECT customer_id, hex(email) AS x, hex(notes) AS n FROM customers",
		"case":          "SELECT customer_id, CASE WHEN customer_id > 0 THEN notes END AS n, CASE WHEN 1 THEN email END AS x FROM customers",
		"json_object":   "SELECT customer_id, json_object('e', email, 'n', notes) AS j FROM customers",
		"group_concat":  "SELECT min(customer_id) AS customer_id, group_concat(email) AS x, group_concat(notes) AS n FROM customers GROUP BY city",
		"window":        "SELECT customer_id, first_value(notes) OVER (ORDER BY customer_id ROWS BETWEEN CURRENT ROW AND CURRENT ROW) AS n FROM customers",
		"join":          "SELECT o.order_id AS customer_id, c.notes AS n, c.email AS x FROM orders o JOIN customers c ON c.customer_id = o.customer_id",
		"union":         "SELECT customer_id, city AS x FROM customers UNION ALL SELECT customer_id + 1000000, notes FROM customers",
		"cte":           "WITH c AS (SELECT customer_id, notes AS city, email AS plan FROM customers) SELECT customer_id, city, plan FROM c",
		"subquery":      "SELECT customer_id, (SELECT notes FROM customers c2 WHERE c2.customer_id = c.customer_id) AS n FROM customers c",
		"from subquery": "SELECT customer_id, x FROM (SELECT customer_id, city AS x FROM customers UNION ALL SELECT customer_id + 1000000, email FROM customers)",
	}
	i := 0
	for name, q := range queries {
		t.Run(name, func(t *testing.T) {
			i++
			// A key each: the queries are many writes.
			key, _ := e.key(t, fmt.Sprintf("agent-%d", i), "member", store.KindAgent, nil)
			c := e.client(t, key)
			model := "probe_" + strings.ReplaceAll(name, " ", "_")
			var mc modelChange
			structured(t, call(t, c, "create_model", map[string]any{"name": model, "sql": q, "primary_key": "customer_id"}), &mc)
			// Then ask for every column to be shown as it is.
			var cols []map[string]any
			for _, col := range mc.Model.Columns {
				cols = append(cols, map[string]any{"name": col.Name, "pii": "none"})
			}
			structured(t, call(t, c, "update_model", map[string]any{"model": model, "columns": cols}), &mc)
			for _, col := range mc.Model.Columns {
				if col.Name != "customer_id" && col.PII == store.PIINone {
					t.Errorf("column %s of %q is shown as is (sources %v)", col.Name, q, col.Sources)
				}
			}
			assertNoSecrets(t, c, model, secrets)
		})
	}
}

func TestSecurityPIIOrdinaryModelsStillWork(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	// A safe SQL model: plain references keep their classification, and
	// an aggregate over unclassified-free columns is shown.
	var mc modelChange
	structured(t, call(t, c, "create_model", map[string]any{"name": "spend", "primary_key": "customer_id",
		"sql": "SELECT c.customer_id, c.region, c.email, sum(o.amount) AS total FROM customers c JOIN orders o USING (customer_id) GROUP BY c.customer_id"}), &mc)
	want := map[string]string{"customer_id": store.PIINone, "region": store.PIINone, "email": store.PIIRedacted}
	for name, level := range want {
		if col, _ := mc.Model.Column(name); col.PII != level {
			t.Errorf("%s = %q, want %q", name, col.PII, level)
		}
	}
	// total reads the join's columns, email among them: redacted, shown
	// masked, never blocked.
	if col, _ := mc.Model.Column("total"); col.PII != store.PIIRedacted {
		t.Errorf("total = %+v, want redacted (it reads customers.email through the GROUP BY's columns)", col)
	}
	var p previewResult
	structured(t, call(t, c, "preview_model", map[string]any{"model": "spend", "limit": 5}), &p)
	if len(p.Rows) != 5 || p.Rows[0]["region"] == nil {
		t.Errorf("preview of a safe model = %+v", p.Rows)
	}
	// describe_table shows the classification the levels come from.
	res := call(t, c, "describe_table", map[string]any{"table": "customers"})
	if !strings.Contains(text(res), "email TEXT (redacted)") || !strings.Contains(text(res), "notes TEXT (blocked)") {
		t.Errorf("describe_table = %s", text(res))
	}
}

// TestSecurityPIIBlockedColumnsCannotChooseRows: a SQL model whose rows a
// blocked column chooses (a WHERE, a join, an ORDER BY with LIMIT) would
// tell, by which rows it has, what the column holds, one guess at a time;
// such a model is blocked whole, and no audience may count it. A filter on
// a column that may be shown leaves the model usable.
func TestSecurityPIIBlockedColumnsCannotChooseRows(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	queries := map[string]string{
		"where":         "SELECT customer_id FROM customers WHERE customer_id = 3 AND unicode(notes) = 76",
		"where, shown":  "SELECT customer_id, city FROM customers WHERE notes LIKE 'a%'",
		"join":          "SELECT c.customer_id FROM customers c JOIN customers d ON d.notes = c.notes AND d.customer_id <> c.customer_id",
		"order and cut": "SELECT customer_id FROM customers ORDER BY notes LIMIT 1",
		"group":         "SELECT min(customer_id) AS customer_id FROM customers GROUP BY notes",
		"unclassified":  "SELECT o.order_id AS customer_id FROM orders o WHERE o.customer_id IN (SELECT customer_id FROM customers WHERE notes IS NULL)",
	}
	i := 0
	for name, q := range queries {
		i++
		t.Run(name, func(t *testing.T) {
			key, _ := e.key(t, fmt.Sprintf("prober-%d", i), "member", store.KindAgent, nil)
			c := e.client(t, key)
			model := fmt.Sprintf("rows_%d", i)
			var mc modelChange
			structured(t, call(t, c, "create_model", map[string]any{"name": model, "sql": q, "primary_key": "customer_id",
				"columns": []map[string]any{{"name": "customer_id", "pii": "none"}}}), &mc)
			for _, col := range mc.Model.Columns {
				if col.PII != store.PIIBlocked {
					t.Errorf("%s: column %s = %q, want blocked (guards %v, sources %v)", q, col.Name, col.PII, col.Guards, col.Sources)
				}
			}
			if res := call(t, c, "preview_model", map[string]any{"model": model}); !res.IsError {
				t.Errorf("%s: previewed: %s", q, text(res))
			}
			for _, def := range []map[string]any{
				{"model": model, "conditions": map[string]any{"all": []any{}}},
				{"model": "customers", "conditions": map[string]any{"column": "plan", "operator": "equals", "value": "pro"}},
			} {
				res := call(t, c, "preview_audience", map[string]any{"definition": def})
				if def["model"] == model && (!res.IsError || !strings.Contains(text(res), "cannot be used in audiences")) {
					t.Errorf("%s: an audience counted the model: %v %q", q, res.IsError, text(res))
				}
				if def["model"] == "customers" && res.IsError {
					t.Errorf("an ordinary audience was refused: %s", text(res))
				}
			}
		})
	}

	// A filter on a column that may be shown keeps the model usable.
	key, _ := e.key(t, "analyst", "member", store.KindAgent, nil)
	c := e.client(t, key)
	var mc modelChange
	structured(t, call(t, c, "create_model", map[string]any{"name": "emea", "primary_key": "customer_id",
		"sql": "SELECT customer_id, city FROM customers WHERE region = 'EMEA' ORDER BY city LIMIT 50"}), &mc)
	if col, _ := mc.Model.Column("customer_id"); col.PII != store.PIINone {
		t.Errorf("customer_id of a model filtered by region = %+v, want none", col)
	}
	var p previewResult
	structured(t, call(t, c, "preview_model", map[string]any{"model": "emea", "limit": 10}), &p)
	if len(p.Rows) != 10 {
		t.Errorf("preview of the region model: %d rows", len(p.Rows))
	}
	if res := call(t, c, "preview_audience", map[string]any{"definition": map[string]any{"model": "emea", "conditions": map[string]any{"all": []any{}}}}); res.IsError {
		t.Errorf("an audience over the region model was refused: %s", text(res))
	}
}
