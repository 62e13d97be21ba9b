package server_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// runtimeFailure is what a caller reads when a query fails while it runs:
// a fixed message, never the engine's, which can quote a row's value.
const runtimeFailure = "failed while it ran"

// customerValues returns the emails and notes of the test warehouse's
// customers, read from analytics.db directly: values no error, audit reason
// or log line may ever carry. Short values are left out, so a word that
// happens to occur in a message is not taken for a leak.
func (e *env) customerValues(t *testing.T) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.whDir, "analytics.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT email FROM customers WHERE email IS NOT NULL
		UNION SELECT notes FROM customers WHERE notes IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var values []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		if len(v) >= 12 {
			values = append(values, v)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(values) < 100 {
		t.Fatalf("only %d customer values to look for", len(values))
	}
	return values
}

// probeTarget returns a customer with both an email and notes: the one
// customer the probes below make a query fail for.
func (e *env) probeTarget(t *testing.T) int {
	t.Helper()
	return e.warehouseCount(t, `SELECT min(customer_id) FROM customers
		WHERE email IS NOT NULL AND notes IS NOT NULL AND customer_id > 150`)
}

// noValues fails the test when s holds any of values.
func noValues(t *testing.T, where, s string, values []string) {
	t.Helper()
	for _, v := range values {
		if strings.Contains(s, v) {
			t.Errorf("%s carries the customer value %q: %q", where, v, s)
			return
		}
	}
}

// lastAuditOf returns the newest audit event of tool recorded for the key
// with prefix.
func (e *env) lastAuditOf(t *testing.T, prefix, tool string) store.AuditEvent {
	t.Helper()
	evs := e.audit(t)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].KeyPrefix == prefix && evs[i].Tool == tool {
			return evs[i]
		}
	}
	t.Fatalf("no audit event of %s for key %s", tool, prefix)
	return store.AuditEvent{}
}

// TestWarehouseErrorsCarryNoData probes, with an ordinary agent key, for
// customer values in the engine's error messages: SQL whose evaluation
// fails with a message quoting the value it failed on (json_extract with a
// column as the path says "bad JSON path: '<the value>'"), for every row or
// for one customer only. The caller must get a fixed message, and the audit
// reason and the server log must hold none of the values.
func TestWarehouseErrorsCarryNoData(t *testing.T) {
	t.Parallel()
	e := setup(t)
	values := e.customerValues(t)
	target := e.probeTarget(t)

	// oneCustomer is a model SQL that computes probe (NULL for everyone but
	// the target) in reverse order with a LIMIT: the warehouse's check reads
	// only the first 100 rows, which leaves the target out, so the model is
	// saved; a preview, or an audience count, computes every row.
	oneCustomer := func(expr string) string {
		return fmt.Sprintf(`SELECT customer_id, CASE WHEN customer_id = %d THEN %s END AS probe
FROM customers ORDER BY customer_id DESC LIMIT 100000`, target, expr)
	}
	probeModel := func(name, expr string) map[string]any {
		return map[string]any{
			"name": name, "sql": oneCustomer(expr), "primary_key": "customer_id",
			"columns": []map[string]any{{"name": "customer_id", "pii": "none"}, {"name": "probe", "pii": "none"}},
		}
	}
	everyone := func(name, sql string) map[string]any {
		return map[string]any{"name": name, "sql": sql, "primary_key": "customer_id"}
	}
	onProbe := func(model string) map[string]any {
		return map[string]any{"model": model, "conditions": map[string]any{"all": []map[string]any{
			{"column": "probe", "operator": "is_not_null"}}}}
	}

	cases := []struct {
		name string
		// prepare runs first with the same key and must succeed.
		prepare []struct {
			tool string
			args map[string]any
		}
		tool string
		args map[string]any
	}{
		{name: "create_model json_extract with notes as the path",
			tool: "create_model", args: everyone("m", `SELECT customer_id, json_extract('{}', notes) AS x FROM customers`)},
		{name: "create_model json_extract with email as the path",
			tool: "create_model", args: everyone("m", `SELECT customer_id, json_extract('{}', email) AS x FROM customers`)},
		{name: "create_model the ->> operator with email in the path",
			tool: "create_model", args: everyone("m", `SELECT customer_id, '{}' ->> ('$' || email) AS x FROM customers`)},
		{name: "create_model a CAST of notes into a JSON path",
			tool: "create_model", args: everyone("m", `SELECT customer_id, json_set('{}', CAST(notes AS TEXT), 1) AS x FROM customers`)},
		{name: "create_model an integer overflow in an aggregate",
			tool: "create_model", args: everyone("m", `SELECT 1 AS customer_id, sum(CASE WHEN email LIKE '%' THEN 9223372036854775807 ELSE 0 END) AS x FROM customers`)},
		{name: "update_model sql with json_extract on email",
			prepare: []struct {
				tool string
				args map[string]any
			}{{"create_model", everyone("mine", `SELECT customer_id, city FROM customers`)}},
			tool: "update_model", args: map[string]any{"model": "mine", "sql": `SELECT customer_id, json_extract('{}', email) AS city FROM customers`}},
		{name: "preview_model a CASE that fails for one customer's email",
			prepare: []struct {
				tool string
				args map[string]any
			}{{"create_model", probeModel("probe", "json_extract('{}', email)")}},
			tool: "preview_model", args: map[string]any{"model": "probe", "limit": 100}},
		// A model that reads notes anywhere is blocked whole, so no preview
		// computes it (security_pii_test.go); a WHERE clause on a redacted
		// column is computed for every row a preview reads.
		{name: "preview_model a WHERE that fails for one customer's email",
			prepare: []struct {
				tool string
				args map[string]any
			}{{"create_model", everyone("probe", fmt.Sprintf(`SELECT customer_id, city FROM customers
WHERE CASE WHEN customer_id = %d THEN json_extract('{}', email) ELSE 1 END IS NOT NULL
ORDER BY customer_id DESC LIMIT 100000`, target))}},
			tool: "preview_model", args: map[string]any{"model": "probe", "limit": 100}},
		{name: "preview_model a CAST of one customer's email into a JSON path",
			prepare: []struct {
				tool string
				args map[string]any
			}{{"create_model", probeModel("probe", "json_remove('{}', CAST(customer_id AS TEXT) || email)")}},
			tool: "preview_model", args: map[string]any{"model": "probe"}},
		{name: "preview_model an integer overflow for one customer",
			prepare: []struct {
				tool string
				args map[string]any
			}{{"create_model", probeModel("probe", "abs(-9223372036854775807 - 1)")}},
			tool: "preview_model", args: map[string]any{"model": "probe"}},
		{name: "preview_audience counting a model that fails for one customer",
			prepare: []struct {
				tool string
				args map[string]any
			}{{"create_model", probeModel("probe", "json_extract('{}', email)")}},
			tool: "preview_audience", args: map[string]any{"definition": onProbe("probe"), "limit": 5}},
		{name: "create_audience sized by a model that fails for one customer",
			prepare: []struct {
				tool string
				args map[string]any
			}{{"create_model", probeModel("probe", "json_extract('{}', email)")}},
			tool: "create_audience", args: map[string]any{"name": "probed", "definition": onProbe("probe")}},
	}
	t.Run("probes", func(t *testing.T) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				key, k := e.key(t, fmt.Sprintf("prober-%d", i), "member", store.KindAgent, nil)
				c := e.client(t, key)
				// Models are workspace-wide: each case's models have
				// names of their own.
				for _, p := range tc.prepare {
					if res := call(t, c, p.tool, renameFor(p.args, i)); res.IsError {
						t.Fatalf("%s: %s", p.tool, text(res))
					}
				}
				res := call(t, c, tc.tool, renameFor(tc.args, i))
				if !res.IsError || !strings.Contains(text(res), runtimeFailure) {
					t.Errorf("%s = %v %q, want the fixed message that it %s", tc.tool, res.IsError, text(res), runtimeFailure)
				}
				if strings.Contains(text(res), "Internal error") {
					t.Errorf("%s: a runtime failure of the caller's SQL is an internal error: %q", tc.tool, text(res))
				}
				noValues(t, "the tool result", text(res), values)
				ev := e.lastAuditOf(t, k.Prefix, tc.tool)
				if ev.Decision != store.DecisionFailed || !strings.Contains(ev.Reason, runtimeFailure) {
					t.Errorf("audit of %s = %s %q, want failed with the fixed message", tc.tool, ev.Decision, ev.Reason)
				}
				noValues(t, "the audit reason", ev.Reason, values)
			})
		}
	})
	noValues(t, "the server log", e.logs.String(), values)
	if n := e.warehouseCount(t, "SELECT count(*) FROM customers"); n == 0 {
		t.Fatal("the warehouse has no customers: the probes proved nothing")
	}
}

// renameFor gives the model and audience names of args a suffix of case
// i, and the references to them in update_model, preview_model and
// audience definitions the same.
func renameFor(args map[string]any, i int) map[string]any {
	out := make(map[string]any, len(args))
	for k, v := range args {
		out[k] = v
	}
	suffix := fmt.Sprintf("_%d", i)
	for _, k := range []string{"name", "model"} {
		if s, ok := out[k].(string); ok {
			out[k] = s + suffix
		}
	}
	if def, ok := out["definition"].(map[string]any); ok {
		out["definition"] = renameFor(def, i)
	}
	return out
}

// TestWarehouseCompileErrorsNameOnlyTheSQL checks that SQL which does not
// compile still gets an error the agent can fix, naming what it wrote, and
// that SQL which handles its values runs as before.
func TestWarehouseCompileErrorsNameOnlyTheSQL(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cases := []struct{ name, sql, want string }{
		{"syntax error", "SELEC customer_id FROM customers", `the warehouse refused the model's SQL: syntax error near "SELEC"`},
		{"unknown column", "SELECT nope AS customer_id FROM customers", "no such column: nope"},
		{"unknown table", "SELECT customer_id FROM nope", "no such table: nope"},
		{"unknown function", "SELECT nope(customer_id) AS customer_id FROM customers", "no such function: nope"},
		{"wrong number of arguments", "SELECT abs(customer_id, 1) AS customer_id FROM customers", "wrong number of arguments to function abs()"},
		{"double-quoted string", `SELECT customer_id FROM customers WHERE state = "CA"`, `no such column: "CA" (double quotes name a column`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, k := e.key(t, fmt.Sprintf("writer-%d", i), "member", store.KindAgent, nil)
			c := e.client(t, key)
			res := call(t, c, "create_model", map[string]any{"name": fmt.Sprintf("m_%d", i), "sql": tc.sql, "primary_key": "customer_id"})
			if !res.IsError || !strings.Contains(text(res), tc.want) {
				t.Errorf("create_model(%q) = %v %q, want an error containing %q", tc.sql, res.IsError, text(res), tc.want)
			}
			if ev := e.lastAuditOf(t, k.Prefix, "create_model"); ev.Decision != store.DecisionFailed || !strings.Contains(ev.Reason, tc.want) {
				t.Errorf("audit = %s %q, want failed with %q", ev.Decision, ev.Reason, tc.want)
			}
		})
	}
	t.Run("SQL that handles its values", func(t *testing.T) {
		t.Parallel()
		key, _ := e.key(t, "writer-ok", "member", store.KindAgent, nil)
		c := e.client(t, key)
		structured(t, call(t, c, "create_model", map[string]any{
			"name":        "email_json",
			"sql":         `SELECT customer_id, CASE WHEN json_valid(email) THEN json_extract(email, '$.tag') END AS tag FROM customers`,
			"primary_key": "customer_id",
			"columns":     []map[string]any{{"name": "customer_id", "pii": "none"}, {"name": "tag", "pii": "none"}},
		}), &modelChange{})
		var p previewResult
		structured(t, call(t, c, "preview_model", map[string]any{"model": "email_json", "limit": 100}), &p)
		if len(p.Rows) != 100 {
			t.Errorf("preview of a model that handles its values: %d rows, want 100", len(p.Rows))
		}
	})
}
