package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
)

// openFilterWarehouse opens a small demo warehouse whose analytics.db also
// has a view over customers, as a customer's own warehouse might.
func openFilterWarehouse(t testing.TB, opts WarehouseOptions) *Warehouse {
	t.Helper()
	dir := generateDemo(t, demo.Options{Scale: testScale, Now: demoNow})
	db, err := sql.Open("sqlite", filepath.Join(dir, AnalyticsFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE VIEW vip AS SELECT * FROM customers WHERE lifetime_value > 100`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	w, err := OpenWarehouse(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// count runs a one-value query without filters: the truth to compare with.
func count(t *testing.T, w *Warehouse, query string) int64 {
	t.Helper()
	res, err := w.Query(context.Background(), store.QueryLimits{}, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	n, ok := res.Rows[0][0].(int64)
	if !ok {
		t.Fatalf("%s: %v is not a count", query, res.Rows[0][0])
	}
	return n
}

func filter(group, table, column, op string, value any) store.AccessFilter {
	return store.AccessFilter{ID: "flt_" + group, Group: group, Table: table, Column: column, Operator: op, Value: value}
}

var emea = filter("emea", "analytics.customers", "region", store.FilterEquals, "EMEA")

func TestAccessFilterBypasses(t *testing.T) {
	t.Parallel()
	w := openFilterWarehouse(t, WarehouseOptions{})
	emeaCount := count(t, w, "SELECT count(*) FROM analytics.customers WHERE region = 'EMEA'")
	if emeaCount == 0 || emeaCount == testScale {
		t.Fatalf("the demo has %d EMEA customers of %d: the test proves nothing", emeaCount, testScale)
	}
	emeaOrders := count(t, w, "SELECT count(*) FROM analytics.orders o JOIN analytics.customers c USING (customer_id) WHERE c.region = 'EMEA'")
	allOrders := count(t, w, "SELECT count(*) FROM analytics.orders")
	emeaMaxID := count(t, w, "SELECT max(customer_id) FROM analytics.customers WHERE region = 'EMEA'")
	emeaStates := count(t, w, "SELECT count(DISTINCT state) FROM analytics.customers WHERE region = 'EMEA'")

	const qualified = "has an access filter for you: name it without the schema (customers)"
	tests := []struct {
		name   string
		query  string
		want   int64  // the first value of the first row
		refuse string // or the refusal's reason
	}{
		{"direct read", "SELECT count(*) FROM customers", emeaCount, ""},
		{"direct read, qualified", "SELECT count(*) FROM analytics.customers", 0, qualified},
		{"rows of the table", "SELECT count(*) FROM (SELECT * FROM customers)", emeaCount, ""},
		{"columns, qualified", "SELECT email FROM analytics.customers", 0, qualified},
		{"temp-qualified view", "SELECT count(*) FROM temp.customers", emeaCount, ""},
		{"subquery", "SELECT count(*) FROM (SELECT customer_id FROM customers WHERE customer_id > 0)", emeaCount, ""},
		{"subquery, qualified", "SELECT count(*) FROM (SELECT customer_id FROM analytics.customers)", 0, qualified},
		{"scalar subquery, qualified", "SELECT (SELECT count(*) FROM analytics.customers)", 0, qualified},
		{"exists, qualified", "SELECT count(*) FROM analytics.orders o WHERE EXISTS (SELECT 1 FROM analytics.customers c WHERE c.customer_id = o.customer_id)", 0, qualified},
		{"in subquery", "SELECT count(*) FROM analytics.orders WHERE customer_id IN (SELECT customer_id FROM customers)", emeaOrders, ""},
		{"CTE", "WITH c AS (SELECT * FROM customers) SELECT count(*) FROM c", emeaCount, ""},
		{"CTE, qualified", "WITH c AS (SELECT * FROM analytics.customers) SELECT count(*) FROM c", 0, qualified},
		// SQLite reports reads inside a CTE with the CTE's name as the view
		// name: a CTE named like the filter view must not pass for it.
		{"CTE named like the table", "WITH customers AS (SELECT * FROM analytics.customers) SELECT count(*) FROM customers", 0, qualified},
		{"CTE named like the table, rows only", "WITH customers AS (SELECT customer_id FROM analytics.customers) SELECT count(*) FROM customers", 0, qualified},
		{"recursive CTE", "WITH RECURSIVE c(id) AS (SELECT min(customer_id) FROM customers UNION ALL SELECT id + 1 FROM c WHERE id < 3) SELECT count(*) FROM c", 3, ""},
		{"join", "SELECT count(*) FROM analytics.orders o JOIN customers c USING (customer_id)", emeaOrders, ""},
		{"join, qualified", "SELECT count(*) FROM analytics.orders o JOIN analytics.customers c USING (customer_id)", 0, qualified},
		{"comma join, qualified", "SELECT count(*) FROM analytics.orders, analytics.customers LIMIT 1", 0, qualified},
		{"union", "SELECT count(*) FROM (SELECT customer_id FROM customers UNION SELECT customer_id FROM customers)", emeaCount, ""},
		{"union, qualified", "SELECT customer_id FROM customers UNION SELECT customer_id FROM analytics.customers", 0, qualified},
		{"union all, qualified first", "SELECT region FROM analytics.customers UNION ALL SELECT region FROM customers", 0, qualified},
		{"warehouse view", "SELECT count(*) FROM vip", 0, "table analytics.customers"},
		{"warehouse view, qualified", "SELECT count(*) FROM analytics.vip", 0, "table analytics.customers"},
		{"warehouse view, a column", "SELECT email FROM analytics.vip", 0, "table analytics.customers"},
		// A view of the caller's own would be the way around: writes,
		// TEMP ones included, are refused, so it cannot be made.
		{"own temp view", "CREATE TEMP VIEW mine AS SELECT * FROM analytics.customers", 0, "writes are not allowed"},
		{"replace the filter view", "CREATE TEMP VIEW IF NOT EXISTS customers AS SELECT * FROM analytics.customers", 0, "writes are not allowed"},
		{"drop the filter view", "DROP VIEW customers", 0, "writes are not allowed"},
		{"attach the file again", "ATTACH DATABASE 'file:analytics.db?mode=ro' AS again", 0, "attaching or detaching a database is not allowed"},
		{"aggregate", "SELECT count(DISTINCT region) FROM customers", 1, ""},
		{"group by", "SELECT count(*) FROM (SELECT region, count(*) FROM customers GROUP BY region)", 1, ""},
		{"rowid only", "SELECT max(customer_id) FROM customers", emeaMaxID, ""},
		{"index only", "SELECT count(DISTINCT state) FROM customers", emeaStates, ""},
		{"index only, qualified", "SELECT count(DISTINCT state) FROM analytics.customers", 0, qualified},
		{"window", "SELECT count(*) OVER () FROM customers LIMIT 1", emeaCount, ""},
		{"unfiltered table", "SELECT count(*) FROM analytics.orders", allOrders, ""},
		{"unfiltered table, unqualified", "SELECT count(*) FROM orders", allOrders, ""},
		{"main schema", "SELECT count(*) FROM main.customers", 0, "no such table"},
		{"temp catalog", "SELECT sql FROM temp.sqlite_master", 0, "may not be read"},
		{"temp catalog, rows only", "SELECT count(*) FROM sqlite_temp_master", 0, "may not be read"},
		{"database list", "SELECT name FROM pragma_database_list", 0, "may not be read"},
		{"database list, rows only", "SELECT count(*) FROM pragma_database_list", 0, "may not be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := w.Query(context.Background(), store.QueryLimits{Filters: []store.AccessFilter{emea}}, tt.query)
			if tt.refuse != "" {
				if err == nil {
					t.Fatalf("no error; rows %v", res.Rows)
				}
				if !strings.Contains(err.Error(), tt.refuse) {
					t.Fatalf("err = %v, want it to say %q", err, tt.refuse)
				}
				if tt.refuse != "no such table" && !errors.Is(err, store.ErrQueryRefused) {
					t.Errorf("err = %v, want ErrQueryRefused", err)
				}
				if strings.Contains(err.Error(), "ss_") {
					t.Errorf("err = %v names the filter source", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Rows[0][0]; got != tt.want {
				t.Errorf("got %v, want %d", got, tt.want)
			}
		})
	}

	t.Run("every row is permitted", func(t *testing.T) {
		t.Parallel()
		for _, q := range []string{
			"SELECT * FROM customers",
			"SELECT c.* FROM analytics.orders o JOIN customers c USING (customer_id)",
			"WITH x AS (SELECT * FROM customers) SELECT * FROM x UNION ALL SELECT * FROM customers",
		} {
			res, err := w.Query(context.Background(), store.QueryLimits{Filters: []store.AccessFilter{emea}}, q)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			region := -1
			for i, c := range res.Columns {
				if c == "region" {
					region = i
				}
			}
			if len(res.Rows) == 0 || region < 0 {
				t.Fatalf("%s: %d rows, columns %v", q, len(res.Rows), res.Columns)
			}
			for _, r := range res.Rows {
				if r[region] != "EMEA" {
					t.Fatalf("%s: a row of region %v", q, r[region])
				}
			}
		}
	})
}

func TestAccessFilterOperators(t *testing.T) {
	t.Parallel()
	w := openFilterWarehouse(t, WarehouseOptions{})
	c := func(column, op string, v any) store.AccessFilter {
		return filter("g", "analytics.customers", column, op, v)
	}
	tests := []struct {
		name    string
		filters []store.AccessFilter
		truth   string
	}{
		{"none", nil, "1 = 1"},
		{"equals", []store.AccessFilter{c("region", store.FilterEquals, "EMEA")}, "region = 'EMEA'"},
		{"not equals", []store.AccessFilter{c("region", store.FilterNotEquals, "NA")}, "region <> 'NA'"},
		{"in", []store.AccessFilter{c("plan", store.FilterIn, []any{"pro", "enterprise"})}, "plan IN ('pro', 'enterprise')"},
		{"not in", []store.AccessFilter{c("plan", store.FilterNotIn, []any{"free"})}, "plan NOT IN ('free')"},
		{"greater than", []store.AccessFilter{c("lifetime_value", store.FilterGreaterThan, 500)}, "lifetime_value > 500"},
		{"greater or equal", []store.AccessFilter{c("lifetime_value", store.FilterGreaterOrEqual, 250.5)}, "lifetime_value >= 250.5"},
		{"less than", []store.AccessFilter{c("customer_id", store.FilterLessThan, 50)}, "customer_id < 50"},
		{"less or equal", []store.AccessFilter{c("signup_at", store.FilterLessOrEqual, "2025-01-01")}, "signup_at <= '2025-01-01'"},
		{"boolean", []store.AccessFilter{c("marketing_consent", store.FilterEquals, true)}, "marketing_consent = 1"},
		{"JSON number", []store.AccessFilter{c("customer_id", store.FilterIn, []any{1.0, 2.0, 3.0})}, "customer_id IN (1, 2, 3)"},
		{"two groups intersect", []store.AccessFilter{
			filter("emea", "analytics.customers", "region", store.FilterEquals, "EMEA"),
			filter("pro", "analytics.customers", "plan", store.FilterEquals, "pro"),
		}, "region = 'EMEA' AND plan = 'pro'"},
		{"no row passes", []store.AccessFilter{c("region", store.FilterEquals, "EMEA"), c("region", store.FilterEquals, "NA")}, "0"},
		{"injection is a value", []store.AccessFilter{c("region", store.FilterEquals, "EMEA' OR 1=1 --")}, "0"},
		{"table name in another case", []store.AccessFilter{filter("g", "ANALYTICS.Customers", "REGION", store.FilterEquals, "APAC")}, "region = 'APAC'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := count(t, w, "SELECT count(*) FROM analytics.customers WHERE "+tt.truth)
			res, err := w.Query(context.Background(), store.QueryLimits{Filters: tt.filters}, "SELECT count(*) FROM customers")
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Rows[0][0]; got != want {
				t.Errorf("count = %v, want %d", got, want)
			}
			if want == 0 && tt.truth != "0" || want == testScale && len(tt.filters) > 0 {
				t.Errorf("truth %q counts %d rows: the case proves nothing", tt.truth, want)
			}
		})
	}

	t.Run("orders filtered alone", func(t *testing.T) {
		t.Parallel()
		f := filter("web", "analytics.orders", "channel", store.FilterEquals, "web")
		want := count(t, w, "SELECT count(*) FROM analytics.orders WHERE channel = 'web'")
		res, err := w.Query(context.Background(), store.QueryLimits{Filters: []store.AccessFilter{f, emea}},
			"SELECT count(*) FROM orders o JOIN customers c USING (customer_id)")
		if err != nil {
			t.Fatal(err)
		}
		both := count(t, w, "SELECT count(*) FROM analytics.orders o JOIN analytics.customers c USING (customer_id) WHERE o.channel = 'web' AND c.region = 'EMEA'")
		if res.Rows[0][0] != both || both == want {
			t.Errorf("count = %v, want %d (web orders: %d)", res.Rows[0][0], both, want)
		}
	})
}

func TestAccessFilterThatCannotApplyRefuses(t *testing.T) {
	t.Parallel()
	w := openFilterWarehouse(t, WarehouseOptions{})
	tests := []struct {
		name   string
		filter store.AccessFilter
		want   string
	}{
		{"unknown column", filter("g", "analytics.customers", "regio", store.FilterEquals, "EMEA"), `no column "regio"`},
		{"unknown table", filter("g", "analytics.nope", "x", store.FilterEquals, "EMEA"), "does not exist"},
		{"other schema", filter("g", "cdp_audit.audit_events", "id", store.FilterEquals, 1), "no tables a query may read"},
		{"a view", filter("g", "analytics.vip", "region", store.FilterEquals, "EMEA"), "only tables can be filtered"},
		{"unknown operator", filter("g", "analytics.customers", "region", "like", "E%"), "is not one of"},
		{"null value", filter("g", "analytics.customers", "region", store.FilterEquals, nil), "null"},
		{"empty list", filter("g", "analytics.customers", "region", store.FilterIn, []any{}), "needs 1 to"},
		{"not schema.table", filter("g", "customers", "region", store.FilterEquals, "EMEA"), "not schema.table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := w.Query(context.Background(), store.QueryLimits{Filters: []store.AccessFilter{tt.filter}}, "SELECT count(*) FROM analytics.orders")
			if !errors.Is(err, store.ErrQueryRefused) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "ask a workspace admin") {
				t.Errorf("err = %v, want a refusal saying %q", err, tt.want)
			}
		})
	}
}

// TestAccessFiltersLeaveNoTrace runs filtered and unfiltered queries on a
// single connection: filters of one query never reach the next, also after
// a refusal or a timeout.
func TestAccessFiltersLeaveNoTrace(t *testing.T) {
	t.Parallel()
	w := openFilterWarehouse(t, WarehouseOptions{ReadConns: 1})
	ctx := context.Background()
	emeaCount := count(t, w, "SELECT count(*) FROM analytics.customers WHERE region = 'EMEA'")
	steps := []struct {
		filters []store.AccessFilter
		query   string
		timeout time.Duration
		want    int64 // -1: an error
	}{
		{[]store.AccessFilter{emea}, "SELECT count(*) FROM customers", 0, emeaCount},
		{nil, "SELECT count(*) FROM customers", 0, testScale},
		{[]store.AccessFilter{emea}, "SELECT count(*) FROM analytics.customers", 0, -1},
		{nil, "SELECT count(*) FROM analytics.customers", 0, testScale},
		{[]store.AccessFilter{emea}, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n, customers", 200 * time.Millisecond, -1},
		{nil, "SELECT count(*) FROM customers", 0, testScale},
		{[]store.AccessFilter{emea}, "SELECT count(*) FROM customers", 0, emeaCount},
		{nil, "SELECT count(*) FROM sqlite_temp_master", 0, -1},
	}
	for i, st := range steps {
		res, err := w.Query(ctx, store.QueryLimits{Filters: st.filters, Timeout: st.timeout}, st.query)
		switch {
		case st.want < 0 && err == nil:
			t.Errorf("step %d: no error", i)
		case st.want >= 0 && err != nil:
			t.Errorf("step %d: %v", i, err)
		case st.want >= 0 && res.Rows[0][0] != st.want:
			t.Errorf("step %d: count %v, want %d", i, res.Rows[0][0], st.want)
		}
	}
	// The TEMP schema is empty again: read it as the warehouse's own code.
	conn, err := w.read.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var leftover int
	err = conn.Raw(func(dc any) error {
		c := dc.(*warehouseConn)
		c.state.setSetup(true)
		defer c.state.setSetup(false)
		rows, err := driverRows(ctx, c.sqliteConn, "SELECT count(*) FROM sqlite_temp_master", 1)
		if err != nil {
			return err
		}
		leftover = int(rows[0][0].(int64))
		dbs, err := databaseList(ctx, c.sqliteConn)
		if len(dbs) != 5 {
			return fmt.Errorf("databases %v, want main, temp and the three files", dbs)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if leftover != 0 {
		t.Errorf("%d objects left in TEMP", leftover)
	}
}

func TestAccessFiltersConcurrent(t *testing.T) {
	t.Parallel()
	w := openFilterWarehouse(t, WarehouseOptions{ReadConns: 3})
	emeaCount := count(t, w, "SELECT count(*) FROM analytics.customers WHERE region = 'EMEA'")
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var filters []store.AccessFilter
			want := int64(testScale)
			if i%2 == 0 {
				filters, want = []store.AccessFilter{emea}, emeaCount
			}
			res, err := w.Query(context.Background(), store.QueryLimits{Filters: filters}, "SELECT count(*) FROM customers")
			if err != nil {
				errs <- err
				return
			}
			if res.Rows[0][0] != want {
				errs <- fmt.Errorf("query %d: count %v, want %d", i, res.Rows[0][0], want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestAccessFilterProgramCheck shows the second line of defence alone: with
// the authorizer told nothing of a filtered table, the program check still
// refuses to open its table or its indexes through the analytics schema.
func TestAccessFilterProgramCheck(t *testing.T) {
	t.Parallel()
	w := openFilterWarehouse(t, WarehouseOptions{ReadConns: 1})
	ctx := context.Background()
	roots, err := w.rootPages(ctx, "customers")
	if err != nil || len(roots) < 2 {
		t.Fatalf("root pages of customers = %v, %v; want the table and its indexes", roots, err)
	}
	conn, err := w.read.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f := &connFilters{schema: "ss_none", values: "ss_none_values", views: map[string]string{}, roots: map[int64]string{}, readable: map[int64]bool{}}
	for _, r := range roots {
		f.roots[r] = "customers"
	}
	for _, q := range []string{
		"SELECT count(*) FROM analytics.customers",
		"SELECT email FROM analytics.customers",
		"SELECT count(DISTINCT state) FROM analytics.customers",
		"SELECT count(*) FROM analytics.orders o JOIN analytics.customers c USING (customer_id)",
	} {
		err := conn.Raw(func(dc any) error {
			c := dc.(*warehouseConn)
			c.state.setFilters(f)
			defer c.state.setFilters(nil)
			_, err := c.checkStatement(q)
			return err
		})
		if !errors.Is(err, store.ErrQueryRefused) || !strings.Contains(err.Error(), "access filter") {
			t.Errorf("%s: err = %v, want the program check's refusal", q, err)
		}
	}
}

func TestDialectTableNameAppliesFilters(t *testing.T) {
	t.Parallel()
	w := openFilterWarehouse(t, WarehouseOptions{})
	rel, err := store.Model{Table: "analytics.customers"}.Relation(Dialect{})
	if err != nil || rel != `"customers"` {
		t.Fatalf("relation = %q, %v", rel, err)
	}
	if got := (Dialect{}).TableName("cdp_audit", "audit_events"); got != `"cdp_audit"."audit_events"` {
		t.Errorf("TableName of another schema = %s", got)
	}
	q := "SELECT count(*) FROM " + rel + ` AS "model"`
	want := count(t, w, "SELECT count(*) FROM analytics.customers WHERE region = 'EMEA'")
	res, err := w.Query(context.Background(), store.QueryLimits{Filters: []store.AccessFilter{emea}}, q)
	if err != nil || res.Rows[0][0] != want {
		t.Errorf("filtered count through the relation = %v, %v; want %d", res.Rows, err, want)
	}
	if n := count(t, w, q); n != testScale {
		t.Errorf("unfiltered count through the relation = %d, want %d", n, testScale)
	}
}
