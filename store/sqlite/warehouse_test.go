package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
)

// testScale keeps warehouse tests fast; the demo tests cover the default.
const testScale = 300

// openTestWarehouse generates a small demo in a fresh directory, gives
// cdp_planner and cdp_audit a table each (so reads of them reach the
// authorizer instead of failing as unknown tables), and opens it.
func openTestWarehouse(t testing.TB, opts WarehouseOptions) (*Warehouse, string) {
	t.Helper()
	dir := generateDemo(t, demo.Options{Scale: testScale, Now: demoNow})
	for _, f := range []struct{ file, ddl string }{
		{PlannerFile, "CREATE TABLE sync_state (sync_id TEXT, customer_id INTEGER); INSERT INTO sync_state VALUES ('syn_1', 1)"},
		{AuditFile, "CREATE TABLE audit_events (id INTEGER PRIMARY KEY, detail TEXT); INSERT INTO audit_events VALUES (1, 'secret')"},
	} {
		db, err := sql.Open("sqlite", filepath.Join(dir, f.file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(f.ddl); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	w, err := OpenWarehouse(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("OpenWarehouse: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w, dir
}

func TestWarehouseRefuses(t *testing.T) {
	t.Parallel()
	w, dir := openTestWarehouse(t, WarehouseOptions{})
	ctx := context.Background()
	vacuumFile := filepath.Join(t.TempDir(), "copy.db")

	const (
		writes     = "writes are not allowed"
		attach     = "attaching or detaching a database is not allowed"
		pragma     = "PRAGMA statements are not allowed"
		tx         = "transaction control is not allowed"
		oneOnly    = "only one statement is allowed"
		auditRead  = "table cdp_audit.audit_events may not be read"
		syncRead   = "table cdp_planner.sync_state may not be read"
		schemaRead = "table main.sqlite_master may not be read"
	)
	tests := []struct {
		name, query, reason string
	}{
		{"insert", "INSERT INTO analytics.customers (customer_id, first_name, last_name) VALUES (999999, 'a', 'b')", writes},
		{"insert unqualified", "INSERT INTO customers (customer_id, first_name, last_name) VALUES (999999, 'a', 'b')", writes},
		{"replace", "REPLACE INTO analytics.orders (order_id, customer_id) VALUES (1, 1)", writes},
		{"update", "UPDATE analytics.customers SET plan = 'pro'", writes},
		{"delete", "DELETE FROM analytics.orders", writes},
		{"delete behind a CTE", "WITH x AS (SELECT 1) DELETE FROM analytics.customers WHERE customer_id IN (SELECT * FROM x)", writes},
		{"insert behind a CTE", "WITH x AS (SELECT 1 AS id) INSERT INTO analytics.orders (customer_id) SELECT id FROM x", writes},
		{"upsert", "INSERT INTO analytics.customers (customer_id, first_name, last_name) VALUES (1, 'a', 'b') ON CONFLICT DO UPDATE SET notes = 'x'", writes},
		{"create table", "CREATE TABLE analytics.x (a)", writes},
		{"create temp table", "CREATE TEMP TABLE x AS SELECT * FROM analytics.customers", writes},
		{"create temp view", "CREATE TEMP VIEW customers AS SELECT 1", writes},
		{"create trigger", "CREATE TEMP TRIGGER t AFTER INSERT ON orders BEGIN SELECT 1; END", writes},
		{"create index", "CREATE INDEX analytics.i ON customers (email)", writes},
		{"drop table", "DROP TABLE analytics.events", writes},
		{"alter table", "ALTER TABLE analytics.customers ADD COLUMN x TEXT", writes},
		{"analyze", "ANALYZE", writes},
		{"reindex", "REINDEX", writes},
		{"attach", "ATTACH DATABASE 'file:" + filepath.Join(dir, AuditFile) + "' AS audit2", attach},
		{"detach", "DETACH DATABASE cdp_audit", attach},
		{"vacuum", "VACUUM", writes},
		{"vacuum into", "VACUUM analytics INTO '" + vacuumFile + "'", writes},
		{"pragma", "PRAGMA analytics.table_info(customers)", pragma},
		{"pragma write", "PRAGMA query_only = 0", pragma},
		{"pragma writable_schema", "PRAGMA writable_schema = 1", pragma},
		{"pragma function", "SELECT * FROM pragma_table_info('customers')", "table main.pragma_table_info may not be read"},
		{"begin", "BEGIN", tx},
		{"savepoint", "SAVEPOINT s", tx},
		{"read audit", "SELECT * FROM cdp_audit.audit_events", auditRead},
		{"read audit unqualified", "SELECT detail FROM audit_events", auditRead},
		{"count audit", "SELECT count(*) FROM cdp_audit.audit_events", auditRead},
		{"audit in a join", "SELECT c.email FROM analytics.customers c JOIN cdp_audit.audit_events a ON a.id = c.customer_id", auditRead},
		{"audit in a union", "SELECT email FROM analytics.customers UNION ALL SELECT detail FROM cdp_audit.audit_events", auditRead},
		{"audit in a CTE", "WITH a AS (SELECT detail FROM cdp_audit.audit_events) SELECT * FROM a", auditRead},
		{"audit in a subquery", "SELECT (SELECT detail FROM cdp_audit.audit_events LIMIT 1)", auditRead},
		{"read planner", "SELECT * FROM cdp_planner.sync_state", syncRead},
		// Tables read for their rows alone: the authorizer gets no schema.
		{"count audit unqualified", "SELECT count(*) FROM audit_events", "tables of cdp_audit may not be read"},
		{"rows of audit unqualified", "SELECT 1 FROM audit_events", "tables of cdp_audit may not be read"},
		{"audit in an exists", "SELECT EXISTS (SELECT 1 FROM sync_state)", "tables of cdp_planner may not be read"},
		{"audit beside customers", "SELECT c.customer_id FROM analytics.customers c, audit_events LIMIT 1", "tables of cdp_audit may not be read"},
		{"CTE shadowed by nothing", "WITH x AS (SELECT 1) SELECT count(*) FROM x, sync_state", "tables of cdp_planner may not be read"},
		{"dbstat", "SELECT name FROM dbstat('cdp_audit')", "table main.dbstat may not be read"},
		{"sqlite_dbpage", "SELECT data FROM sqlite_dbpage('cdp_audit')", "table main.sqlite_dbpage may not be read"},
		{"count sqlite_dbpage", "SELECT count(*) FROM sqlite_dbpage('cdp_audit')", "table sqlite_dbpage may not be read"},
		{"count dbstat", "SELECT count(*) FROM dbstat('cdp_audit')", "table dbstat may not be read"},
		{"count pragma function", "SELECT count(*) FROM pragma_table_list", "table pragma_table_list may not be read"},
		{"count sqlite_master", "SELECT count(*) FROM sqlite_master", "may not be read"},
		{"read sqlite_master", "SELECT * FROM sqlite_master", schemaRead},
		{"read sqlite_schema", "SELECT sql FROM sqlite_schema", schemaRead},
		{"read analytics schema", "SELECT sql FROM analytics.sqlite_schema", "table analytics.sqlite_master may not be read"},
		{"read audit schema", "SELECT sql FROM cdp_audit.sqlite_master", "table cdp_audit.sqlite_master may not be read"},
		{"read temp schema", "SELECT * FROM temp.sqlite_master", "table temp.sqlite_temp_master may not be read"},
		{"read statistics", "SELECT * FROM analytics.sqlite_stat1", "table analytics.sqlite_stat1 may not be read"},
		{"load_extension", "SELECT load_extension('/tmp/evil.so')", "function load_extension is not allowed"},
		{"load_extension in a where", "SELECT 1 FROM analytics.customers WHERE load_extension('x') IS NULL", "function load_extension is not allowed"},
		{"sqlite_version", "SELECT sqlite_version()", "function sqlite_version is not allowed"},
		{"randomblob", "SELECT randomblob(1000000000)", "function randomblob is not allowed"},
		{"unknown function", "SELECT readfile('/etc/passwd')", ""},
		{"two selects", "select 1; select 2", oneOnly},
		{"select then delete", "SELECT * FROM analytics.customers; DELETE FROM analytics.customers", oneOnly},
		{"select then attach", "SELECT 1; ATTACH DATABASE 'x.db' AS x", oneOnly},
		{"select then pragma", "SELECT 1;PRAGMA query_only=0", oneOnly},
		{"empty statements between", "SELECT 1;;; SELECT 2", oneOnly},
		{"statement after a comment", "SELECT 1; /* c */ SELECT 2", oneOnly},
		{"delete then select", "DELETE FROM analytics.customers; SELECT 1", writes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := w.Query(ctx, store.QueryLimits{}, tt.query)
			if tt.reason == "" {
				// Unknown to SQLite: refused one way or another.
				if err == nil {
					t.Fatal("no error")
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

	t.Run("nothing changed", func(t *testing.T) {
		t.Parallel()
		res, err := w.Query(ctx, store.QueryLimits{}, "SELECT count(*), sum(plan = 'pro') FROM analytics.customers")
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Rows[0][0]; got != int64(testScale) {
			t.Errorf("customers = %v, want %d", got, testScale)
		}
		if _, err := os.Stat(vacuumFile); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("VACUUM INTO wrote a file: %v", err)
		}
	})
}

func TestWarehouseAllows(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	ctx := context.Background()
	now := demoNow.Format(demo.TimeFormat)

	tests := []struct {
		name  string
		query string
		args  []any
		rows  int // -1: any number
	}{
		{"plain select", "SELECT customer_id, email FROM analytics.customers ORDER BY customer_id LIMIT 5", nil, 5},
		{"unqualified table", "SELECT count(*) FROM customers", nil, 1},
		{"unqualified columns", "SELECT email FROM customers LIMIT 2", nil, 2},
		{"count over a CTE", "WITH x AS (SELECT 1 UNION ALL SELECT 2) SELECT count(*) FROM x", nil, 1},
		{"count over json_each", "SELECT count(*) FROM json_each('[1, 2, 3]')", nil, 1},
		{"count over a subquery", "SELECT count(*) FROM (SELECT customer_id FROM analytics.orders)", nil, 1},
		{"CTE named like an audit table", "WITH audit_events AS (SELECT 1 AS detail) SELECT detail FROM audit_events", nil, 1},
		{"quoted identifiers", `SELECT "customer_id" FROM "analytics"."customers" LIMIT 1`, nil, 1},
		{"bound arguments", "SELECT customer_id FROM analytics.customers WHERE customer_id BETWEEN ? AND ?", []any{10, 14}, 5},
		{"join", "SELECT c.customer_id, count(o.order_id) FROM analytics.customers c LEFT JOIN analytics.orders o USING (customer_id) GROUP BY 1", nil, testScale},
		{"three-way join", "SELECT count(*) FROM analytics.customers c JOIN analytics.orders o ON o.customer_id = c.customer_id JOIN analytics.events e ON e.customer_id = c.customer_id WHERE c.plan = 'pro'", nil, 1},
		{"CTE", "WITH pro AS (SELECT customer_id FROM analytics.customers WHERE plan = 'pro') SELECT count(*) FROM pro", nil, 1},
		{"recursive CTE", "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10) SELECT x FROM n", nil, 10},
		{"union", "SELECT 'web' AS c UNION SELECT channel FROM analytics.orders", nil, 3},
		{"aggregates", "SELECT region, count(*), avg(lifetime_value), min(signup_at), max(signup_at), sum(marketing_consent), group_concat(DISTINCT plan), total(lifetime_value) FROM analytics.customers GROUP BY region", nil, 4},
		{"window functions", "SELECT customer_id, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at), lag(amount) OVER (ORDER BY order_id) FROM analytics.orders LIMIT 10", nil, 10},
		{"date functions", "SELECT count(*) FROM analytics.orders WHERE ordered_at >= datetime(?, '-90 days') AND date(ordered_at) <= date(?)", []any{now, now}, 1},
		{"string functions", "SELECT upper(first_name), lower(last_name), substr(email, 1, 3), length(notes), coalesce(phone, 'none'), replace(city, ' ', '_'), trim(' x '), instr(email, '@'), printf('%05d', customer_id) FROM analytics.customers LIMIT 3", nil, 3},
		{"case and cast", "SELECT CASE WHEN lifetime_value > 100 THEN 'high' ELSE 'low' END, CAST(lifetime_value AS INTEGER), round(lifetime_value, 1), abs(-1) FROM analytics.customers LIMIT 3", nil, 3},
		{"like and glob", "SELECT count(*) FROM analytics.customers WHERE email LIKE '%@example.com' OR email GLOB '*example.net'", nil, 1},
		{"json functions", "SELECT json_extract(properties, '$.page'), properties ->> '$.referrer', json_type(properties) FROM analytics.events WHERE event_type = 'page_view' LIMIT 3", nil, 3},
		{"json_each", "SELECT e.event_id, j.key, j.value FROM analytics.events e, json_each(e.properties) j WHERE e.event_id <= 3", nil, -1},
		{"exists subquery", "SELECT count(*) FROM analytics.customers c WHERE EXISTS (SELECT 1 FROM analytics.orders o WHERE o.customer_id = c.customer_id AND o.channel = 'web')", nil, 1},
		{"values", "VALUES (1, 'a'), (2, 'b')", nil, 2},
		{"trailing semicolon and comment", "SELECT 1; -- that is all", nil, 1},
		{"leading comment", "/* count */ SELECT count(*) FROM analytics.orders;", nil, 1},
		{"explain query plan", "EXPLAIN QUERY PLAN SELECT * FROM analytics.customers WHERE state = 'CA'", nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := w.Query(ctx, store.QueryLimits{}, tt.query, tt.args...)
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			if tt.rows >= 0 && len(res.Rows) != tt.rows {
				t.Errorf("rows = %d, want %d", len(res.Rows), tt.rows)
			}
			if res.Truncated {
				t.Error("Truncated")
			}
			if len(res.Columns) == 0 {
				t.Error("no columns")
			}
		})
	}
}

func TestWarehouseInvalid(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	tests := []struct{ name, query string }{
		{"syntax error", "SELEC 1"},
		{"unknown table", "SELECT * FROM analytics.nope"},
		{"unknown column", "SELECT nope FROM analytics.customers"},
		{"double-quoted string", `SELECT count(*) FROM analytics.customers WHERE state = "CA"`},
		{"empty", "  "},
		{"comment only", "-- nothing"},
		{"NUL byte", "SELECT 1\x00; DELETE FROM analytics.customers"},
		{"DML inside a CTE", "WITH x AS (DELETE FROM analytics.customers RETURNING *) SELECT * FROM x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := w.Query(context.Background(), store.QueryLimits{}, tt.query)
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestWarehouseTimeout(t *testing.T) {
	t.Parallel()
	// One connection: the next query reuses (or replaces) the interrupted one.
	w, _ := openTestWarehouse(t, WarehouseOptions{ReadConns: 1})
	tests := []struct{ name, query string }{
		{"endless recursive CTE", "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"},
		// The first row comes at once, the second never: the driver alone
		// only interrupts while the first row is computed.
		{"slow after the first row", "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x FROM n WHERE x = 1 OR x < 0"},
		{"endless cross join", "SELECT count(*) FROM analytics.events a, analytics.events b, analytics.events c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := w.Query(context.Background(), store.QueryLimits{Timeout: 200 * time.Millisecond}, tt.query)
			if !errors.Is(err, store.ErrQueryLimit) {
				t.Fatalf("err = %v, want ErrQueryLimit", err)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("returned after %s", d)
			}
			res, err := w.Query(context.Background(), store.QueryLimits{}, "SELECT count(*) FROM analytics.customers")
			if err != nil {
				t.Fatalf("query after the timeout: %v", err)
			}
			if res.Rows[0][0] != int64(testScale) {
				t.Errorf("count after the timeout = %v", res.Rows[0][0])
			}
		})
	}

	t.Run("caller cancels", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := w.Query(ctx, store.QueryLimits{Timeout: time.Minute}, tests[0].query)
		if errors.Is(err, store.ErrQueryLimit) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the caller's context.DeadlineExceeded", err)
		}
	})
}

func TestWarehouseMaxRows(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{MaxRows: 50})
	tests := []struct {
		name      string
		maxRows   int
		query     string
		rows      int
		truncated bool
	}{
		{"under the limit", 10, "SELECT * FROM analytics.customers LIMIT 5", 5, false},
		{"exactly the limit", 5, "SELECT * FROM analytics.customers LIMIT 5", 5, false},
		{"over the limit", 5, "SELECT * FROM analytics.customers", 5, true},
		{"zero uses the default", 0, "SELECT * FROM analytics.customers", 50, true},
		{"over the default is capped", 1000, "SELECT * FROM analytics.customers", 50, true},
		{"endless rows", 7, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x FROM n", 7, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := w.Query(context.Background(), store.QueryLimits{MaxRows: tt.maxRows}, tt.query)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) != tt.rows || res.Truncated != tt.truncated {
				t.Errorf("rows = %d, truncated = %v; want %d, %v", len(res.Rows), res.Truncated, tt.rows, tt.truncated)
			}
		})
	}
}

func TestWarehouseValues(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	res, err := w.Query(context.Background(), store.QueryLimits{},
		"SELECT 1, 2.5, 'text', NULL, CAST('hi' AS BLOB), x'00ff', customer_id, lifetime_value, email FROM analytics.customers WHERE customer_id = ?", 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{int64(1), 2.5, "text", nil, "hi", []byte{0, 0xff}, int64(1)}
	row := res.Rows[0]
	for i, v := range want {
		if b, ok := v.([]byte); ok {
			if got, ok := row[i].([]byte); !ok || string(got) != string(b) {
				t.Errorf("column %d = %#v, want %#v", i, row[i], v)
			}
			continue
		}
		if row[i] != v {
			t.Errorf("column %d = %#v, want %#v", i, row[i], v)
		}
	}
	if _, ok := row[7].(float64); !ok {
		t.Errorf("lifetime_value is %T, want float64", row[7])
	}
	if _, err := json.Marshal(res); err != nil {
		t.Errorf("the result does not encode to JSON: %v", err)
	}
	if want := []string{"1", "2.5", "'text'", "NULL"}; strings.Join(res.Columns[:4], ",") != strings.Join(want, ",") {
		t.Errorf("columns = %v", res.Columns)
	}
}

func TestWarehouseTimeArguments(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	since := demoNow.Add(-90 * 24 * time.Hour)
	count := func(arg any) any {
		t.Helper()
		res, err := w.Query(context.Background(), store.QueryLimits{}, "SELECT count(*) FROM analytics.orders WHERE ordered_at >= ?", arg)
		if err != nil {
			t.Fatal(err)
		}
		return res.Rows[0][0]
	}
	want := count(since.Format(demo.TimeFormat))
	if want == int64(0) {
		t.Fatal("no recent orders")
	}
	for _, arg := range []time.Time{since, since.In(time.FixedZone("PST", -8*3600))} {
		if got := count(arg); got != want {
			t.Errorf("orders since %v = %v, want %v", arg, got, want)
		}
	}
}

func TestWarehouseConcurrent(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{ReadConns: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			q := "SELECT count(*) FROM analytics.orders WHERE customer_id > ?"
			if i%4 == 0 {
				q = "SELECT * FROM cdp_audit.audit_events"
			}
			_, err := w.Query(context.Background(), store.QueryLimits{}, q, i)
			if i%4 == 0 {
				if !errors.Is(err, store.ErrQueryRefused) || !strings.Contains(err.Error(), "cdp_audit.audit_events") {
					errs <- err
				}
			} else if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestWarehouseTables(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	tables, err := w.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.QualifiedName())
		if tb.Schema != store.SchemaAnalytics || len(tb.Columns) != 0 {
			t.Errorf("table %+v", tb)
		}
		if tb.Name == "customers" && (tb.RowCount == nil || *tb.RowCount != testScale) {
			t.Errorf("customers row count = %v, want %d", tb.RowCount, testScale)
		}
	}
	if got, want := strings.Join(names, " "), "analytics.customers analytics.events analytics.orders"; got != want {
		t.Errorf("tables = %s, want %s", got, want)
	}
}

func TestWarehouseDescribe(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	ctx := context.Background()

	t.Run("customers", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"customers", "CUSTOMERS"} {
			tb, err := w.Describe(ctx, "analytics", name)
			if err != nil {
				t.Fatal(err)
			}
			if tb.QualifiedName() != "analytics.customers" || len(tb.Columns) != 15 {
				t.Fatalf("table %s with %d columns", tb.QualifiedName(), len(tb.Columns))
			}
			want := map[string]store.Column{
				"customer_id":       {Name: "customer_id", Type: "INTEGER", Nullable: false},
				"first_name":        {Name: "first_name", Type: "TEXT", Nullable: false},
				"email":             {Name: "email", Type: "TEXT", Nullable: true},
				"lifetime_value":    {Name: "lifetime_value", Type: "REAL", Nullable: true},
				"marketing_consent": {Name: "marketing_consent", Type: "INTEGER", Nullable: true},
			}
			for _, c := range tb.Columns {
				if wc, ok := want[c.Name]; ok && !reflect.DeepEqual(c, wc) {
					t.Errorf("column %+v, want %+v", c, wc)
				}
			}
			if tb.Columns[0].Name != "customer_id" || tb.Columns[14].Name != "notes" {
				t.Errorf("columns out of order: %v", tb.Columns)
			}
		}
	})

	tests := []struct{ schema, name string }{
		{"analytics", "nope"},
		{"analytics", ""},
		{"analytics", "sqlite_master"},
		{"analytics", "sqlite_stat1"},
		{"cdp_audit", "audit_events"},
		{"cdp_planner", "sync_state"},
		{"main", "customers"},
		{"temp", "sqlite_temp_master"},
		{"nope", "customers"},
	}
	for _, tt := range tests {
		t.Run(tt.schema+"."+tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := w.Describe(ctx, tt.schema, tt.name); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestWarehouseAttachReadOnly shows the files are attached read-only: a
// connection set up the same way, without the authorizer or query_only,
// still cannot write them.
func TestWarehouseAttachReadOnly(t *testing.T) {
	t.Parallel()
	_, dir := openTestWarehouse(t, WarehouseOptions{})
	ctx := context.Background()
	base, err := sqlite.NewConnector("file::memory:")
	if err != nil {
		t.Fatal(err)
	}
	dc, err := base.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	conn := dc.(sqliteConn)
	if err := attachWarehouse(ctx, conn, dir); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ schema, stmt string }{
		{"analytics", "INSERT INTO analytics.customers (customer_id, first_name, last_name) VALUES (999999, 'a', 'b')"},
		{"analytics", "DELETE FROM analytics.orders"},
		{"cdp_planner", "CREATE TABLE cdp_planner.x (a)"},
		{"cdp_audit", "DELETE FROM cdp_audit.audit_events"},
	}
	for _, tt := range tests {
		ro, err := dc.(interface{ IsReadOnly(string) (bool, error) }).IsReadOnly(tt.schema)
		if err != nil || !ro {
			t.Errorf("%s read-only = %v, %v", tt.schema, ro, err)
		}
		_, err = conn.ExecContext(ctx, tt.stmt, nil)
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != 8 { // SQLITE_READONLY
			t.Errorf("%s: err = %v, want SQLITE_READONLY", tt.stmt, err)
		}
	}
	rows, err := conn.QueryContext(ctx, "SELECT count(*) FROM analytics.customers", []driver.NamedValue{})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil || v[0] != int64(testScale) {
		t.Errorf("customers = %v, %v; want %d", v[0], err, testScale)
	}
}

func TestOpenWarehouse(t *testing.T) {
	t.Parallel()

	t.Run("no analytics.db", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		_, err := OpenWarehouse(context.Background(), dir, WarehouseOptions{})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), AnalyticsFile) {
			t.Errorf("err = %v, want a missing analytics.db", err)
		}
	})

	t.Run("creates cdp files", func(t *testing.T) {
		t.Parallel()
		dir := generateDemo(t, demo.Options{Scale: 10, Now: demoNow})
		w, err := OpenWarehouse(context.Background(), dir, WarehouseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for _, f := range []string{PlannerFile, AuditFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
		if w.Dir() != dir {
			t.Errorf("Dir = %s, want %s", w.Dir(), dir)
		}
	})

	t.Run("path needing escapes", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "a ?b#c%20d")
		if err := demo.Generate(context.Background(), dir, demo.Options{Scale: 10, Now: demoNow}); err != nil {
			t.Fatal(err)
		}
		w, err := OpenWarehouse(context.Background(), dir, WarehouseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		res, err := w.Query(context.Background(), store.QueryLimits{}, "SELECT count(*) FROM analytics.customers")
		if err != nil || res.Rows[0][0] != int64(10) {
			t.Errorf("count = %v, %v", res, err)
		}
		if _, err := os.Stat(dir + "?mode=ro"); !errors.Is(err, fs.ErrNotExist) {
			t.Error("the URI was taken for a path")
		}
	})
}

func TestDialect(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	d := w.Dialect()
	if d.Name() != "sqlite" {
		t.Errorf("Name = %q", d.Name())
	}
	tests := []struct{ in, want string }{
		{"customers", `"customers"`},
		{`we"ird`, `"we""ird"`},
		{`"`, `""""`},
		{"a b.c", `"a b.c"`},
		{"", `""`},
	}
	for _, tt := range tests {
		if got := d.QuoteIdent(tt.in); got != tt.want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if tt.in == "" {
			continue
		}
		// SQLite reads the quoted name back as the same identifier.
		res, err := w.Query(context.Background(), store.QueryLimits{}, "SELECT 1 AS "+d.QuoteIdent(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		if res.Columns[0] != tt.in {
			t.Errorf("column %q, want %q", res.Columns[0], tt.in)
		}
	}
}

func BenchmarkWarehouseQuery(b *testing.B) {
	w, _ := openTestWarehouse(b, WarehouseOptions{})
	ctx := context.Background()
	for b.Loop() {
		_, err := w.Query(ctx, store.QueryLimits{}, "SELECT customer_id, email FROM analytics.customers WHERE state = ? LIMIT 10", "CA")
		if err != nil {
			b.Fatal(err)
		}
	}
}
