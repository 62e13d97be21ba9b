package audience

import (
	"context"
	"testing"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// demoScale is the size of the demo warehouse the correctness test
// compares counts on.
const demoScale = 3000

// openDemo generates the demo warehouse at a fixed seed and time into a
// temporary directory of tb and opens it.
func openDemo(tb testing.TB, scale int) *sqlite.Warehouse {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	if err := demo.Generate(ctx, dir, demo.Options{Scale: scale, Seed: 7, Now: testNow}); err != nil {
		tb.Fatalf("GenerateDemo: %v", err)
	}
	w, err := sqlite.OpenWarehouse(ctx, dir, sqlite.WarehouseOptions{})
	if err != nil {
		tb.Fatalf("OpenWarehouse: %v", err)
	}
	tb.Cleanup(func() {
		if err := w.Close(); err != nil {
			tb.Errorf("close warehouse: %v", err)
		}
	})
	return w
}

// queryCount runs a count query and returns its single value.
func queryCount(t testing.TB, w store.Warehouse, sql string, args ...any) int64 {
	t.Helper()
	res, err := w.Query(context.Background(), store.QueryLimits{}, sql, args...)
	if err != nil {
		t.Fatalf("query %s: %v", sql, err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		t.Fatalf("query %s: got %v, want one value", sql, res.Rows)
	}
	n, ok := res.Rows[0][0].(int64)
	if !ok {
		t.Fatalf("query %s: got %T %v, want an int64", sql, res.Rows[0][0], res.Rows[0][0])
	}
	return n
}

// The hand-written queries below compute each audience with SQL written
// for the purpose, independently of the compiler: other functions (instr,
// substr, date, total, EXISTS, GROUP BY), other NULL handling (IS NOT),
// and the demo's time 2025-06-30 12:00:00 UTC.
const now = "'2025-06-30 12:00:00'"

// correctnessCases pair a definition over the demo customers with the
// hand-written count. Every operator, every aggregate, every form of
// nesting and inclusion appears at least once.
var correctnessCases = []struct {
	name, conditions, want string
	// zeroOK marks a case whose count may legitimately be 0.
	zeroOK bool
}{
	{"ca pro with 2 web orders in 90 days", `{"all": [
		{"column": "state", "operator": "equals", "value": "CA"},
		{"column": "plan", "operator": "equals", "value": "pro"},
		{"relationship": "orders", "aggregate": "count", "operator": "greater_or_equal", "value": 2,
		 "within": {"column": "ordered_at", "last_days": 90},
		 "where": {"column": "channel", "operator": "equals", "value": "web"}}]}`,
		`SELECT count(*) FROM analytics.customers c WHERE c.state = 'CA' AND c.plan = 'pro'
		 AND (SELECT count(*) FROM analytics.orders o WHERE o.customer_id = c.customer_id AND o.channel = 'web'
		      AND o.ordered_at BETWEEN datetime(` + now + `, '-90 days') AND ` + now + `) >= 2`, false},
	{"everyone", `{"all": []}`, `SELECT count(*) FROM analytics.customers`, false},
	{"not equals drops missing plans", `{"column": "plan", "operator": "not_equals", "value": "free"}`,
		`SELECT count(*) FROM analytics.customers WHERE plan IN ('pro', 'enterprise')`, false},
	{"not keeps missing plans", `{"not": {"column": "plan", "operator": "equals", "value": "free"}}`,
		`SELECT count(*) FROM analytics.customers WHERE plan IS NOT 'free'`, false},
	{"contains", `{"column": "email", "operator": "contains", "value": "smith"}`,
		`SELECT count(*) FROM analytics.customers WHERE instr(email, 'smith') > 0`, false},
	{"contains is case-sensitive", `{"column": "email", "operator": "contains", "value": "SMITH"}`,
		`SELECT count(*) FROM analytics.customers WHERE instr(email, 'SMITH') > 0`, true},
	{"contains a quote", `{"column": "last_name", "operator": "contains", "value": "'"}`,
		`SELECT count(*) FROM analytics.customers WHERE instr(last_name, '''') > 0`, false},
	{"contains a LIKE wildcard", `{"column": "email", "operator": "contains", "value": "_"}`,
		`SELECT count(*) FROM analytics.customers WHERE instr(email, '_') > 0`, false},
	{"not contains", `{"column": "email", "operator": "not_contains", "value": ".net"}`,
		`SELECT count(*) FROM analytics.customers WHERE email IS NOT NULL AND instr(email, '.net') = 0`, false},
	{"starts with", `{"column": "city", "operator": "starts_with", "value": "San"}`,
		`SELECT count(*) FROM analytics.customers WHERE substr(city, 1, 3) = 'San'`, false},
	{"ends with", `{"column": "email", "operator": "ends_with", "value": "@example.org"}`,
		`SELECT count(*) FROM analytics.customers WHERE substr(email, -12) = '@example.org'`, false},
	{"equals unicode", `{"column": "city", "operator": "equals", "value": "São Paulo"}`,
		`SELECT count(*) FROM analytics.customers WHERE city = 'São Paulo'`, false},
	{"greater than", `{"column": "lifetime_value", "operator": "greater_than", "value": 1000}`,
		`SELECT count(*) FROM analytics.customers WHERE lifetime_value > 1000`, false},
	{"greater or equal and less than", `{"all": [
		{"column": "customer_id", "operator": "greater_or_equal", "value": 1500},
		{"column": "customer_id", "operator": "less_than", "value": 1600}]}`,
		`SELECT 100`, false},
	{"less or equal", `{"column": "lifetime_value", "operator": "less_or_equal", "value": 50.5}`,
		`SELECT count(*) FROM analytics.customers WHERE lifetime_value <= 50.5`, false},
	{"between", `{"column": "lifetime_value", "operator": "between", "value": [100, 500]}`,
		`SELECT count(*) FROM analytics.customers WHERE lifetime_value >= 100 AND lifetime_value <= 500`, false},
	{"not between", `{"column": "lifetime_value", "operator": "not_between", "value": [100, 500]}`,
		`SELECT count(*) FROM analytics.customers WHERE lifetime_value < 100 OR lifetime_value > 500`, false},
	{"in", `{"column": "state", "operator": "in", "value": ["CA", "NY", "TX"]}`,
		`SELECT count(*) FROM analytics.customers WHERE state = 'CA' OR state = 'NY' OR state = 'TX'`, false},
	{"in integers", `{"column": "customer_id", "operator": "in", "value": [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181]}`,
		`SELECT 17`, false},
	{"not in", `{"column": "region", "operator": "not_in", "value": ["NA", "EMEA"]}`,
		`SELECT count(*) FROM analytics.customers WHERE region IN ('APAC', 'LATAM')`, false},
	{"is null", `{"column": "phone", "operator": "is_null"}`,
		`SELECT count(*) FROM analytics.customers WHERE phone IS NULL`, false},
	{"is true and is not null (seeded)", `{"all": [
		{"column": "marketing_consent", "operator": "is_true"},
		{"column": "email", "operator": "is_not_null"}]}`,
		`SELECT count(*) FROM analytics.customers WHERE marketing_consent = 1 AND email IS NOT NULL`, false},
	{"is false", `{"column": "marketing_consent", "operator": "is_false"}`,
		`SELECT count(*) FROM analytics.customers WHERE marketing_consent = 0`, false},
	{"equals true", `{"column": "marketing_consent", "operator": "equals", "value": true}`,
		`SELECT count(*) FROM analytics.customers WHERE marketing_consent <> 0`, false},
	{"timestamp within last days", `{"column": "signup_at", "operator": "within_last_days", "value": 365}`,
		`SELECT count(*) FROM analytics.customers WHERE julianday(` + now + `) - julianday(signup_at) BETWEEN 0 AND 365`, false},
	{"date within last days", `{"column": "birth_date", "operator": "within_last_days", "value": 9000}`,
		`SELECT count(*) FROM analytics.customers WHERE birth_date BETWEEN date('2025-06-30', '-9000 days') AND '2025-06-30'`, false},
	{"date between", `{"column": "birth_date", "operator": "between", "value": ["1980-01-01", "1989-12-31"]}`,
		`SELECT count(*) FROM analytics.customers WHERE strftime('%Y', birth_date) BETWEEN '1980' AND '1989'`, false},
	{"timestamp after a day", `{"column": "signup_at", "operator": "greater_than", "value": "2025-01-01"}`,
		`SELECT count(*) FROM analytics.customers WHERE date(signup_at) > '2025-01-01'`, false},
	{"timestamp on or before a day", `{"column": "signup_at", "operator": "less_or_equal", "value": "2021-01-01"}`,
		`SELECT count(*) FROM analytics.customers WHERE date(signup_at) <= '2021-01-01'`, false},
	{"timestamp between days", `{"column": "signup_at", "operator": "between", "value": ["2023-01-01", "2023-06-30"]}`,
		`SELECT count(*) FROM analytics.customers WHERE date(signup_at) BETWEEN '2023-01-01' AND '2023-06-30'`, false},
	{"timestamp on a day", `{"column": "signup_at", "operator": "equals", "value": "2020-07-05"}`,
		`SELECT count(*) FROM analytics.customers WHERE date(signup_at) = '2020-07-05'`, false},
	{"timestamp not on a day", `{"column": "signup_at", "operator": "not_equals", "value": "2020-07-05"}`,
		`SELECT count(*) FROM analytics.customers WHERE date(signup_at) <> '2020-07-05'`, false},
	{"timestamp at an instant", `{"column": "signup_at", "operator": "equals", "value": "2020-07-05 00:00:00"}`,
		`SELECT count(*) FROM analytics.customers WHERE signup_at = '2020-07-05 00:00:00'`, true},
	{"timestamp not between instants", `{"column": "signup_at", "operator": "not_between", "value": ["2023-01-01T00:00:00Z", "2024-12-31T23:00:00-01:00"]}`,
		`SELECT count(*) FROM analytics.customers WHERE NOT (signup_at BETWEEN '2023-01-01 00:00:00' AND '2025-01-01 00:00:00')`, false},
	{"any", `{"any": [
		{"column": "state", "operator": "equals", "value": "CA"},
		{"column": "region", "operator": "equals", "value": "EMEA"}]}`,
		`SELECT (SELECT count(*) FROM analytics.customers WHERE state = 'CA') + (SELECT count(*) FROM analytics.customers WHERE region = 'EMEA')`, false},
	{"nesting", `{"all": [
		{"column": "region", "operator": "equals", "value": "NA"},
		{"any": [{"column": "plan", "operator": "equals", "value": "enterprise"},
		         {"not": {"all": [{"column": "lifetime_value", "operator": "less_than", "value": 100},
		                          {"column": "marketing_consent", "operator": "is_false"}]}}]},
		{"not": {"column": "state", "operator": "equals", "value": "NY"}}]}`,
		`SELECT count(*) FROM analytics.customers WHERE region = 'NA' AND state IS NOT 'NY'
		 AND (plan = 'enterprise' OR (lifetime_value < 100 AND marketing_consent = 0) IS NOT 1)`, false},
	{"sum in a window", `{"relationship": "orders", "aggregate": "sum", "column": "amount", "operator": "greater_than", "value": 500,
		"within": {"column": "ordered_at", "last_days": 365}}`,
		`SELECT count(*) FROM analytics.customers c WHERE (SELECT total(o.amount) FROM analytics.orders o
		 WHERE o.customer_id = c.customer_id AND o.ordered_at BETWEEN datetime(` + now + `, '-365 days') AND ` + now + `) > 500`, false},
	{"small sum includes no orders", `{"relationship": "orders", "aggregate": "sum", "column": "amount", "operator": "less_than", "value": 100}`,
		`SELECT count(*) FROM analytics.customers c WHERE (SELECT total(amount) FROM analytics.orders o WHERE o.customer_id = c.customer_id) < 100`, false},
	{"max excludes no orders", `{"relationship": "orders", "aggregate": "max", "column": "amount", "operator": "less_than", "value": 50}`,
		`SELECT count(*) FROM (SELECT customer_id FROM analytics.orders GROUP BY customer_id HAVING max(amount) < 50)`, false},
	{"min and avg", `{"all": [
		{"relationship": "orders", "aggregate": "min", "column": "amount", "operator": "greater_or_equal", "value": 30},
		{"relationship": "orders", "aggregate": "avg", "column": "amount", "operator": "between", "value": [50, 150]}]}`,
		`SELECT count(*) FROM (SELECT customer_id FROM analytics.orders GROUP BY customer_id
		 HAVING min(amount) >= 30 AND avg(amount) >= 50 AND avg(amount) <= 150)`, false},
	{"no orders", `{"relationship": "orders", "aggregate": "count", "operator": "equals", "value": 0}`,
		`SELECT count(*) FROM analytics.customers c WHERE NOT EXISTS (SELECT 1 FROM analytics.orders o WHERE o.customer_id = c.customer_id)`, false},
	{"count not between", `{"relationship": "orders", "aggregate": "count", "operator": "not_between", "value": [1, 3]}`,
		`SELECT count(*) FROM analytics.customers c WHERE (SELECT count(*) FROM analytics.orders o WHERE o.customer_id = c.customer_id) NOT IN (1, 2, 3)`, false},
	{"count not equals", `{"relationship": "orders", "aggregate": "count", "operator": "not_equals", "value": 1}`,
		`SELECT count(*) FROM analytics.customers c WHERE (SELECT count(*) FROM analytics.orders o WHERE o.customer_id = c.customer_id) <> 1`, false},
	{"recent cart events", `{"relationship": "events", "aggregate": "count", "operator": "greater_or_equal", "value": 3,
		"within": {"column": "occurred_at", "last_days": 30},
		"where": {"any": [{"column": "event_type", "operator": "in", "value": ["checkout", "add_to_cart"]},
		                  {"all": [{"column": "event_type", "operator": "equals", "value": "page_view"}, {"column": "properties", "operator": "is_null"}]}]}}`,
		`SELECT count(*) FROM analytics.customers WHERE customer_id IN (SELECT customer_id FROM analytics.events
		 WHERE event_type IN ('checkout', 'add_to_cart') AND occurred_at >= datetime(` + now + `, '-30 days') AND occurred_at <= ` + now + `
		 GROUP BY customer_id HAVING count(*) >= 3)`, false},
	{"no recent email opens", `{"all": [{"column": "marketing_consent", "operator": "is_true"},
		{"relationship": "events", "aggregate": "count", "operator": "less_than", "value": 1,
		 "within": {"column": "occurred_at", "last_days": 60},
		 "where": {"not": {"column": "event_type", "operator": "not_equals", "value": "email_open"}}}]}`,
		`SELECT count(*) FROM analytics.customers c WHERE marketing_consent = 1 AND NOT EXISTS (SELECT 1 FROM analytics.events e
		 WHERE e.customer_id = c.customer_id AND e.event_type = 'email_open' AND e.occurred_at BETWEEN datetime(` + now + `, '-60 days') AND ` + now + `)`, false},
	{"in audience", `{"all": [{"in_audience": "aud_ca_pro"}, {"column": "lifetime_value", "operator": "greater_than", "value": 500}]}`,
		`SELECT count(*) FROM analytics.customers WHERE state = 'CA' AND plan = 'pro' AND lifetime_value > 500`, false},
	{"not in audience", `{"all": [{"column": "region", "operator": "equals", "value": "NA"}, {"not_in_audience": "aud_ca_pro"}]}`,
		`SELECT count(*) FROM analytics.customers WHERE region = 'NA' AND (state = 'CA' AND plan = 'pro') IS NOT 1`, false},
	{"nested inclusion and exclusion", `{"in_audience": "aud_nested"}`,
		`SELECT count(*) FROM analytics.customers c
		 LEFT JOIN (SELECT customer_id, total(amount) AS spent FROM analytics.orders GROUP BY customer_id) s ON s.customer_id = c.customer_id
		 WHERE (c.state = 'CA' AND c.plan = 'pro' AND s.spent > 1000) OR (c.region = 'EMEA' AND ifnull(s.spent, 0) <= 1000)`, false},
}

func TestCompiledCountsMatchHandWrittenSQL(t *testing.T) {
	t.Parallel()
	w := openDemo(t, demoScale)
	cat := testCatalog()
	seen := map[Operator]bool{}
	aggregates := map[Aggregate]bool{}
	for _, tc := range correctnessCases {
		def := mustParse(t, `{"model": "customers", "conditions": `+tc.conditions+`}`)
		walk(&def.Conditions, func(c *Condition) {
			seen[c.Operator] = true
			if c.Aggregate != "" {
				aggregates[c.Aggregate] = true
			}
		})
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, err := Compile(def, cat, Options{Dialect: w.Dialect(), Now: testNow})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			c := q.Count()
			got := queryCount(t, w, c.SQL, c.Args...)
			want := queryCount(t, w, tc.want)
			if got != want {
				t.Errorf("compiled count %d, hand-written count %d\ncompiled:\n%s\nargs: %#v", got, want, c.SQL, c.Args)
			}
			if want == 0 && !tc.zeroOK {
				t.Errorf("the hand-written count is 0: the case proves nothing")
			}
			// The members query returns the same people, up to its limit.
			m, err := q.Members([]string{"customer_id", "email", "birth_date"}, 25)
			if err != nil {
				t.Fatalf("Members: %v", err)
			}
			res, err := w.Query(context.Background(), store.QueryLimits{}, m.SQL, m.Args...)
			if err != nil {
				t.Fatalf("members query: %v\n%s", err, m.SQL)
			}
			if len(res.Rows) != int(min(want, 25)) {
				t.Errorf("members query returned %d rows, want %d", len(res.Rows), min(want, 25))
			}
		})
	}
	for _, op := range Operators {
		if !seen[op] {
			t.Errorf("no case uses the operator %s", op)
		}
	}
	for _, a := range Aggregates {
		if !aggregates[a] {
			t.Errorf("no case uses the aggregate %s", a)
		}
	}
}

// walk calls fn for every condition of a tree, where filters included.
func walk(c *Condition, fn func(*Condition)) {
	fn(c)
	for i := range c.All {
		walk(&c.All[i], fn)
	}
	for i := range c.Any {
		walk(&c.Any[i], fn)
	}
	if c.Not != nil {
		walk(c.Not, fn)
	}
	if c.Where != nil {
		walk(c.Where, fn)
	}
}

func TestSQLModelOnWarehouse(t *testing.T) {
	t.Parallel()
	w := openDemo(t, demoScale)
	def := mustParse(t, `{"model": "big_buyers", "conditions": {"all": [
		{"column": "state", "operator": "in", "value": ["CA", "NY"]},
		{"relationship": "orders", "aggregate": "max", "column": "amount", "operator": "greater_or_equal", "value": 250}]}}`)
	q, err := Compile(def, testCatalog(), Options{Dialect: w.Dialect(), Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	c := q.Count()
	got := queryCount(t, w, c.SQL, c.Args...)
	want := queryCount(t, w, `SELECT count(*) FROM analytics.customers c WHERE c.lifetime_value > 500 AND c.state IN ('CA', 'NY')
		AND EXISTS (SELECT 1 FROM analytics.orders o WHERE o.customer_id = c.customer_id AND o.amount >= 250)`)
	if got != want || want == 0 {
		t.Errorf("SQL model count %d, hand-written %d\n%s", got, want, c.SQL)
	}
}

func TestSeededAudiencesOnWarehouse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := openDemo(t, demoScale)
	db, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ws, err := db.EnsureWorkspace(ctx, "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.SeedMetadata(ctx, db, ws.ID); err != nil {
		t.Fatal(err)
	}
	cat, err := LoadSnapshot(ctx, db, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	audiences, err := db.ListAudiences(ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"California pro customers":       `SELECT count(*) FROM analytics.customers WHERE state = 'CA' AND plan = 'pro'`,
		"High-value EMEA customers":      `SELECT count(*) FROM analytics.customers WHERE region = 'EMEA' AND lifetime_value >= 1000`,
		"Marketing-consented with email": `SELECT count(*) FROM analytics.customers WHERE marketing_consent = 1 AND email IS NOT NULL`,
	}
	if len(audiences) != len(want) {
		t.Fatalf("got %d seeded audiences, want %d", len(audiences), len(want))
	}
	for _, a := range audiences {
		def, err := Parse(a.Definition)
		if err != nil {
			t.Errorf("seeded audience %s: %v", a.Name, err)
			continue
		}
		q, err := Compile(def, cat, Options{Dialect: w.Dialect(), Now: testNow, AudienceID: a.ID})
		if err != nil {
			t.Errorf("seeded audience %s: %v", a.Name, err)
			continue
		}
		if q.Model().ID != a.ModelID {
			t.Errorf("seeded audience %s: definition is over model %s, the audience over %s", a.Name, q.Model().ID, a.ModelID)
		}
		c := q.Count()
		if got, want := queryCount(t, w, c.SQL, c.Args...), queryCount(t, w, want[a.Name]); got != want || want == 0 {
			t.Errorf("seeded audience %s: count %d, hand-written %d", a.Name, got, want)
		}
	}
}

func TestWarehouseRefusesNothingCompiled(t *testing.T) {
	t.Parallel()
	// Every golden case runs on the SQLite warehouse: none uses a function
	// or a construct its authorizer refuses.
	w := openDemo(t, demoScale)
	for _, gc := range goldenCases {
		q, err := Compile(mustParse(t, gc.src), testCatalog(), Options{Dialect: w.Dialect(), Now: testNow})
		if err != nil {
			t.Fatalf("%s: %v", gc.name, err)
		}
		c := q.Count()
		if _, err := w.Query(context.Background(), store.QueryLimits{}, c.SQL, c.Args...); err != nil {
			t.Errorf("%s: %v\n%s", gc.name, err, c.SQL)
		}
	}
}
