package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

func TestCheckSQLColumns(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	tests := []struct {
		name  string
		query string
		want  []store.Column
	}{
		{"declared types", "SELECT customer_id, email, lifetime_value, marketing_consent FROM analytics.customers", []store.Column{
			{Name: "customer_id", Type: "integer", Nullable: true},
			{Name: "email", Type: "string", Nullable: true},
			{Name: "lifetime_value", Type: "number", Nullable: true},
			{Name: "marketing_consent", Type: "integer", Nullable: true},
		}},
		{"expressions take their values' types", "SELECT customer_id AS id, count(*) AS orders, sum(amount) AS total, max(channel) AS channel, NULL AS missing FROM analytics.orders GROUP BY customer_id", []store.Column{
			{Name: "id", Type: "integer", Nullable: true},
			{Name: "orders", Type: "integer", Nullable: true},
			{Name: "total", Type: "number", Nullable: true},
			{Name: "channel", Type: "string", Nullable: true},
			{Name: "missing", Type: "string", Nullable: true},
		}},
		{"unqualified, CTE and join", "WITH o AS (SELECT customer_id, amount FROM orders) SELECT c.customer_id, o.amount FROM customers c JOIN o USING (customer_id)", []store.Column{
			{Name: "customer_id", Type: "integer", Nullable: true},
			{Name: "amount", Type: "number", Nullable: true},
		}},
		{"trailing line comment", "SELECT customer_id FROM analytics.customers -- every customer", []store.Column{
			{Name: "customer_id", Type: "integer", Nullable: true},
		}},
		{"comments inside", "SELECT /* the id */ customer_id FROM analytics.customers /* done */", []store.Column{
			{Name: "customer_id", Type: "integer", Nullable: true},
		}},
		{"no rows", "SELECT order_id, 2.5 * amount AS doubled FROM analytics.orders WHERE 0", []store.Column{
			{Name: "order_id", Type: "integer", Nullable: true},
			{Name: "doubled", Type: "string", Nullable: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cols, err := w.CheckSQL(context.Background(), store.QueryLimits{}, tt.query)
			if err != nil {
				t.Fatal(err)
			}
			if len(cols) != len(tt.want) {
				t.Fatalf("columns = %+v, want %+v", cols, tt.want)
			}
			for i := range cols {
				got := store.Column{Name: cols[i].Name, Type: cols[i].Type, Nullable: cols[i].Nullable}
				if !reflect.DeepEqual(got, tt.want[i]) {
					t.Errorf("column %d = %+v, want %+v", i, got, tt.want[i])
				}
			}
		})
	}
}

// TestCheckSQLLineage checks the lineage the engine gives each result
// column: a plain reference names its one source column; anything else,
// however it hides the column it reads, is an expression over every column
// the query reads, so the strictest of their PII levels applies.
func TestCheckSQLLineage(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	const (
		email = "analytics.customers.email"
		notes = "analytics.customers.notes"
		id    = "analytics.customers.customer_id"
		city  = "analytics.customers.city"
	)
	col := func(src string) []string { return []string{src} }
	tests := []struct {
		name    string
		query   string
		lineage []string   // per result column
		sources [][]string // per result column
	}{
		{"plain and renamed", "SELECT customer_id, email AS x FROM customers",
			[]string{store.LineageColumn, store.LineageColumn}, [][]string{col(id), col(email)}},
		{"qualified", "SELECT c.city FROM analytics.customers c",
			[]string{store.LineageColumn}, [][]string{col(city)}},
		{"function", "SELECT customer_id, lower(email) AS e FROM customers",
			[]string{store.LineageColumn, store.LineageExpression}, [][]string{col(id), {id, email}}},
		{"substr and concatenation", "SELECT substr(email, 1, 3) || '' AS e FROM customers",
			[]string{store.LineageExpression}, [][]string{col(email)}},
		{"hex", "SELECT hex(notes) AS h FROM customers", []string{store.LineageExpression}, [][]string{col(notes)}},
		{"case", "SELECT CASE WHEN customer_id > 0 THEN notes END AS n FROM customers",
			[]string{store.LineageExpression}, [][]string{{id, notes}}},
		{"json_object", "SELECT json_object('e', email) AS j FROM customers", []string{store.LineageExpression}, [][]string{col(email)}},
		{"group_concat", "SELECT city, group_concat(email) AS all_emails FROM customers GROUP BY city",
			[]string{store.LineageColumn, store.LineageExpression}, [][]string{col(city), {city, email}}},
		{"window", "SELECT customer_id, first_value(notes) OVER (ORDER BY customer_id) AS n FROM customers",
			[]string{store.LineageExpression, store.LineageExpression}, [][]string{{id, notes}, {id, notes}}},
		{"union names the first arm only", "SELECT city FROM customers UNION SELECT email FROM customers",
			[]string{store.LineageExpression}, [][]string{{city, email}}},
		{"union inside a subquery", "SELECT x FROM (SELECT city AS x FROM customers UNION ALL SELECT notes FROM customers)",
			[]string{store.LineageExpression}, [][]string{{city, notes}}},
		{"cte", "WITH c AS (SELECT customer_id, notes AS city FROM customers) SELECT customer_id, city FROM c",
			nil, [][]string{nil, nil}},
		{"scalar subquery", "SELECT customer_id, (SELECT email FROM customers c2 WHERE c2.customer_id = c.customer_id) AS e FROM customers c",
			[]string{store.LineageExpression, store.LineageExpression}, [][]string{{id, email}, {id, email}}},
		{"join", "SELECT o.order_id, c.email FROM orders o JOIN customers c ON c.customer_id = o.customer_id",
			[]string{store.LineageColumn, store.LineageColumn}, [][]string{col("analytics.orders.order_id"), col(email)}},
		{"count reads no column", "SELECT count(*) AS n FROM customers", []string{store.LineageExpression}, [][]string{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cols, err := w.CheckSQL(context.Background(), store.QueryLimits{}, tt.query)
			if err != nil {
				t.Fatal(err)
			}
			if len(cols) != len(tt.sources) {
				t.Fatalf("%d columns, want %d", len(cols), len(tt.sources))
			}
			for i, c := range cols {
				if tt.lineage == nil {
					// However SQLite compiles it, a renamed column must
					// never be traced to the wrong source.
					if c.Lineage == store.LineageColumn && c.Name == "city" && !slices.Equal(c.Sources, []string{notes}) {
						t.Errorf("column %s traced to %v", c.Name, c.Sources)
					}
					if c.Name == "city" && !slices.Contains(c.Sources, notes) {
						t.Errorf("column city = %+v: its values are notes", c)
					}
					continue
				}
				if c.Lineage != tt.lineage[i] {
					t.Errorf("column %s lineage = %q, want %q", c.Name, c.Lineage, tt.lineage[i])
				}
				if !slices.Equal(c.Sources, tt.sources[i]) && !(len(c.Sources) == 0 && len(tt.sources[i]) == 0) {
					t.Errorf("column %s sources = %v, want %v", c.Name, c.Sources, tt.sources[i])
				}
			}
		})
	}
}

// TestCheckSQLRefuses covers what a SQL model must never do, and the ways
// model SQL could escape the subquery previews and audiences wrap it in.
func TestCheckSQLRefuses(t *testing.T) {
	t.Parallel()
	w, dir := openTestWarehouse(t, WarehouseOptions{})
	serverDB := filepath.Join(filepath.Dir(dir), "signalsmith.db")
	tests := []struct {
		name, query, reason string
	}{
		{"trailing semicolon", "SELECT customer_id FROM analytics.customers;", "does not work as a subquery"},
		{"trailing semicolon and comment", "SELECT customer_id FROM analytics.customers; -- done", "does not work as a subquery"},
		{"unterminated comment", "SELECT customer_id FROM analytics.customers /* the rest", "does not work as a subquery"},
		{"escaping parenthesis", "SELECT 1 AS a) UNION SELECT detail FROM (SELECT 1 AS detail", "syntax error"},
		{"unterminated comment that would close the subquery", "SELECT 1 AS a /* ) AS x, cdp_audit.audit_events", "does not work as a subquery"},
		// A comment is a comment, whatever it says: accepted, reads nothing.
		{"closed comment naming the audit table", "SELECT 1 AS a /* ) AS x, cdp_audit.audit_events */", ""},
		{"second statement", "SELECT 1 AS a; SELECT 2 AS b", "only one statement is allowed"},
		{"second statement that writes", "SELECT 1 AS a; DELETE FROM analytics.customers", "only one statement is allowed"},
		{"write", "DELETE FROM analytics.customers", "writes are not allowed"},
		{"insert behind a CTE", "WITH x AS (SELECT 1) INSERT INTO analytics.orders (customer_id) SELECT 1 FROM x", "writes are not allowed"},
		{"insert inside a CTE", "WITH x AS (INSERT INTO analytics.orders (customer_id) VALUES (1) RETURNING *) SELECT * FROM x", "syntax error"},
		{"attach", "ATTACH DATABASE 'file:" + serverDB + "' AS server", "attaching or detaching a database is not allowed"},
		{"vacuum into", "VACUUM INTO '" + filepath.Join(t.TempDir(), "copy.db") + "'", "writes are not allowed"},
		{"pragma", "PRAGMA table_info(customers)", "PRAGMA statements are not allowed"},
		{"pragma function", "SELECT name FROM pragma_table_info('customers')", "may not be read"},
		{"explain", "EXPLAIN SELECT 1", "does not work as a subquery"},
		{"audit schema", "SELECT * FROM cdp_audit.audit_events", "table cdp_audit.audit_events may not be read"},
		{"audit schema, rows only", "SELECT count(*) AS n FROM audit_events", "tables of cdp_audit may not be read"},
		{"planner schema", "SELECT * FROM cdp_planner.sync_state", "table cdp_planner.sync_state may not be read"},
		{"main schema", "SELECT * FROM main.sqlite_master", "may not be read"},
		{"temp schema", "SELECT * FROM temp.sqlite_master", "may not be read"},
		{"sqlite_master", "SELECT sql FROM sqlite_master", "may not be read"},
		{"analytics catalog", "SELECT sql FROM analytics.sqlite_schema", "may not be read"},
		{"load_extension", "SELECT load_extension('/tmp/evil.so') AS x", "function load_extension is not allowed"},
		{"a file of the server", "SELECT readfile('" + serverDB + "') AS x", "no such function"},
		{"duplicate column names", "SELECT customer_id, customer_id FROM analytics.customers", "appears twice"},
		{"duplicate names in another case", "SELECT email AS e, phone AS E FROM analytics.customers", "appears twice"},
		{"syntax error", "SELEC 1", "syntax error"},
		{"empty", " ", "no SQL statement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cols, err := w.CheckSQL(context.Background(), store.QueryLimits{}, tt.query)
			if tt.reason == "" {
				if err != nil || len(cols) != 1 || cols[0].Name != "a" {
					t.Fatalf("columns = %+v, err = %v; want column a", cols, err)
				}
				return
			}
			if !errors.Is(err, store.ErrQueryRefused) {
				t.Fatalf("err = %v, want ErrQueryRefused", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("err = %q, want it to say %q", err, tt.reason)
			}
		})
	}
}

func TestCheckSQLLimitsAndFilters(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	ctx := context.Background()
	_, err := w.CheckSQL(ctx, store.QueryLimits{Timeout: 200 * time.Millisecond},
		"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) AS n FROM n")
	if !errors.Is(err, store.ErrQueryLimit) {
		t.Errorf("endless SQL: err = %v, want ErrQueryLimit", err)
	}
	limits := store.QueryLimits{Filters: []store.AccessFilter{emea}}
	if _, err := w.CheckSQL(ctx, limits, "SELECT * FROM analytics.customers"); !errors.Is(err, store.ErrQueryRefused) ||
		!strings.Contains(err.Error(), "name it without the schema") {
		t.Errorf("qualified read of a filtered table: err = %v, want a refusal", err)
	}
	cols, err := w.CheckSQL(ctx, limits, "SELECT * FROM customers")
	if err != nil || len(cols) != 15 || cols[0].Name != "customer_id" || cols[0].Type != store.TypeInteger {
		t.Errorf("filtered read: columns %+v, err %v", cols, err)
	}
}

// FuzzCheckSQL feeds model SQL to CheckSQL under an access filter, on one
// connection. Whatever the text, CheckSQL returns columns or an error, never
// panics, writes nothing, and leaves the connection as it found it: an
// unfiltered count afterwards sees every customer. The seed corpus is in
// testdata/fuzz/FuzzCheckSQL.
func FuzzCheckSQL(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM customers",
		"SELECT customer_id, email FROM analytics.customers",
		"SELECT 1 AS a;",
		"SELECT 1 AS a; SELECT 2",
		"WITH customers AS (SELECT * FROM analytics.customers) SELECT * FROM customers",
		"SELECT count(*) AS n FROM orders o JOIN customers c USING (customer_id)",
		"SELECT 1 AS a /* x",
		"SELECT 1 AS a -- x",
		"ATTACH DATABASE 'x.db' AS x",
		"PRAGMA query_only = 0",
		"SELECT * FROM temp.sqlite_master",
	} {
		f.Add(s)
	}
	w, _ := openTestWarehouse(f, WarehouseOptions{ReadConns: 1})
	limits := store.QueryLimits{Timeout: 2 * time.Second, Filters: []store.AccessFilter{emea}}
	f.Fuzz(func(t *testing.T, query string) {
		cols, err := w.CheckSQL(context.Background(), limits, query)
		if err == nil {
			seen := map[string]bool{}
			for _, c := range cols {
				if seen[strings.ToLower(c.Name)] || !store.ValidColumnType(c.Type) {
					t.Fatalf("%q: columns %+v", query, cols)
				}
				seen[strings.ToLower(c.Name)] = true
			}
		}
		res, err := w.Query(context.Background(), store.QueryLimits{}, "SELECT count(*) FROM customers")
		if err != nil || res.Rows[0][0] != int64(testScale) {
			t.Fatalf("after %q: count %v, %v", query, res.Rows, err)
		}
	})
}

// TestCheckSQLGuards checks which source columns guard a model's plain
// columns: those the query reads beyond its plain result columns, which may
// choose its rows.
func TestCheckSQLGuards(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	tests := []struct {
		query  string
		guards []string
	}{
		{"SELECT customer_id, notes FROM customers", nil},
		{"SELECT * FROM customers", nil},
		{"SELECT customer_id FROM customers WHERE unicode(notes) = 76", []string{"analytics.customers.notes"}},
		{"SELECT customer_id, notes FROM customers WHERE notes LIKE 'a%'", []string{"analytics.customers.notes"}},
		{"SELECT customer_id FROM customers ORDER BY email LIMIT 1", []string{"analytics.customers.email"}},
		{"SELECT customer_id, city FROM customers WHERE region = 'EMEA'", []string{"analytics.customers.region"}},
	}
	for _, tt := range tests {
		cols, err := w.CheckSQL(context.Background(), store.QueryLimits{}, tt.query)
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		for _, c := range cols {
			if c.Lineage == store.LineageColumn && !slices.Equal(c.Guards, tt.guards) {
				t.Errorf("%s: column %s guards = %v, want %v", tt.query, c.Name, c.Guards, tt.guards)
			}
		}
	}
}
