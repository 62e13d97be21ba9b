package audience

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
	"github.com/signalsmith/agent-server/store/trino"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// dialects are the dialects every golden case is compiled for.
var dialects = []store.Dialect{sqlite.Dialect{}, trino.Dialect{}}

// goldenCases are compiled for each dialect and compared with
// testdata/golden/NAME.DIALECT.sql.
var goldenCases = []struct {
	name, src string
	members   []string
}{
	{"ca_pro_web_orders", validDefinitions["ca pro web orders"], []string{"customer_id", "email", "state", "plan"}},
	{"every_operator", validDefinitions["every operator"], []string{"customer_id"}},
	{"related_aggregates", validDefinitions["related aggregates"], []string{"customer_id", "lifetime_value"}},
	{"nesting", validDefinitions["nesting"], []string{"customer_id", "region", "plan"}},
	{"everyone", validDefinitions["everyone"], []string{"customer_id"}},
	{"inclusion", `{"model": "customers", "conditions": {"all": [
		{"in_audience": "aud_nested"},
		{"not_in_audience": "aud_ca_pro"}]}}`, []string{"customer_id"}},
	{"timestamps", `{"model": "customers", "conditions": {"any": [
		{"column": "signup_at", "operator": "equals", "value": "2024-02-29"},
		{"column": "signup_at", "operator": "equals", "value": "2024-02-29T10:30:00+02:00"},
		{"column": "signup_at", "operator": "not_equals", "value": "2024-03-01"},
		{"column": "signup_at", "operator": "greater_than", "value": "2025-01-01"},
		{"column": "signup_at", "operator": "less_or_equal", "value": "2021-01-01"},
		{"column": "signup_at", "operator": "between", "value": ["2023-01-01", "2023-06-30"]},
		{"column": "signup_at", "operator": "not_between", "value": ["2023-01-01 00:00:00", "2023-06-30 12:00:00.5"]},
		{"column": "birth_date", "operator": "equals", "value": "1990-05-17"},
		{"column": "birth_date", "operator": "within_last_days", "value": 7300},
		{"column": "signup_at", "operator": "within_last_days", "value": 7}]}}`, []string{"customer_id", "signup_at", "birth_date"}},
	{"escaping", `{"model": "customers", "conditions": {"any": [
		{"column": "last_name", "operator": "equals", "value": "O'Connor\"; DROP TABLE customers; --"},
		{"column": "email", "operator": "contains", "value": "50%_off*[x]?\\"},
		{"column": "city", "operator": "starts_with", "value": "São"},
		{"column": "email", "operator": "not_contains", "value": "_"}]}}`, []string{"customer_id", "last_name"}},
	{"sql_model", `{"model": "big_buyers", "conditions": {"all": [
		{"column": "state", "operator": "in", "value": ["CA", "NY"]},
		{"relationship": "orders", "aggregate": "max", "column": "amount", "operator": "greater_or_equal", "value": 250}]}}`, []string{"customer_id", "spend"}},
}

func TestCompileGolden(t *testing.T) {
	t.Parallel()
	cat := testCatalog()
	for _, gc := range goldenCases {
		for _, d := range dialects {
			t.Run(gc.name+"/"+d.Name(), func(t *testing.T) {
				t.Parallel()
				q, err := Compile(mustParse(t, gc.src), cat, Options{Dialect: d, Now: testNow})
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				count := q.Count()
				members, err := q.Members(gc.members, 100)
				if err != nil {
					t.Fatalf("Members: %v", err)
				}
				for _, c := range []Compiled{count, members, q.Where()} {
					if n := placeholders(c.SQL); n != len(c.Args) {
						t.Errorf("%d placeholders but %d args in\n%s", n, len(c.Args), c.SQL)
					}
					if strings.Contains(c.SQL, "DROP") || strings.Contains(c.SQL, "Connor") {
						t.Errorf("a value is in the SQL text:\n%s", c.SQL)
					}
				}
				got := golden(count, members)
				path := filepath.Join("testdata", "golden", gc.name+"."+d.Name()+".sql")
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("read golden file (run go test ./audience/ -run TestCompileGolden -update to create it): %v", err)
				}
				if got != string(want) {
					t.Errorf("compiled SQL differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
				}
			})
		}
	}
}

// placeholders counts the ? outside quoted identifiers and strings.
func placeholders(sql string) int {
	n := 0
	var quote byte
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '?':
			n++
		}
	}
	return n
}

// golden renders a count and a members query with their arguments and
// their Go types.
func golden(count, members Compiled) string {
	var b strings.Builder
	b.WriteString("-- count\n" + count.SQL + "\n\n-- members\n" + members.SQL + "\n\n-- args\n")
	for i, a := range count.Args {
		fmt.Fprintf(&b, "%d: %T %#v\n", i+1, a, a)
	}
	return b.String()
}

func TestCompileWhere(t *testing.T) {
	t.Parallel()
	q, err := Compile(mustParse(t, validDefinitions["ca pro web orders"]), testCatalog(), Options{Dialect: sqlite.Dialect{}, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := q.Model().Relation(sqlite.Dialect{})
	if err != nil {
		t.Fatal(err)
	}
	if q.Model().Name != "customers" || q.Alias() != `"p"` || q.From() != rel+` AS "p"` {
		t.Errorf("Model, Alias, From = %s, %s, %s", q.Model().Name, q.Alias(), q.From())
	}
	w := q.Where()
	if !strings.HasPrefix(w.SQL, "(") || !strings.HasSuffix(w.SQL, ")") {
		t.Errorf("a predicate with several conditions is not parenthesised: %s", w.SQL)
	}
	want := []any{"CA", "pro", "2025-04-01 12:00:00", "2025-06-30 12:00:00", "web", int64(2)}
	if fmt.Sprint(w.Args) != fmt.Sprint(want) {
		t.Errorf("args = %#v, want %#v", w.Args, want)
	}
	// Each caller gets its own copy of the arguments.
	w.Args[0] = "changed"
	if q.Count().Args[0] != "CA" || q.Where().Args[0] != "CA" {
		t.Errorf("changing Where().Args changed the query")
	}
	// Now is truncated to the second, in UTC.
	q2, err := Compile(mustParse(t, validDefinitions["ca pro web orders"]), testCatalog(),
		Options{Dialect: sqlite.Dialect{}, Now: testNow.Add(700 * time.Millisecond).In(time.FixedZone("x", 3600))})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(q2.Where().Args) != fmt.Sprint(want) {
		t.Errorf("args with a fractional, zoned now = %v, want %v", q2.Where().Args, want)
	}
}

func TestCompileInclusionProblems(t *testing.T) {
	t.Parallel()
	// A chain of audiences, each including the next, one deeper than allowed.
	models := testModels()
	audiences := testAudiences()
	for i := 0; i <= MaxInclusionDepth; i++ {
		cond := fmt.Sprintf(`{"in_audience": "aud_chain_%d"}`, i+1)
		if i == MaxInclusionDepth {
			cond = `{"column": "plan", "operator": "equals", "value": "pro"}`
		}
		audiences = append(audiences, store.Audience{ID: fmt.Sprintf("aud_chain_%d", i), ModelID: "mdl_customers", Definition: audienceDef(cond)})
	}
	// A diamond: each level includes the next twice, so the inlined SQL
	// doubles with each level.
	list := strings.TrimSuffix(strings.Repeat(`"x",`, 1000), ",")
	for i := 0; i < 7; i++ {
		next := fmt.Sprintf("aud_diamond_%d", i+1)
		cond := fmt.Sprintf(`{"any": [{"in_audience": %q}, {"not_in_audience": %q}]}`, next, next)
		audiences = append(audiences, store.Audience{ID: fmt.Sprintf("aud_diamond_%d", i), ModelID: "mdl_customers", Definition: audienceDef(cond)})
	}
	audiences = append(audiences, store.Audience{ID: "aud_diamond_7", ModelID: "mdl_customers",
		Definition: audienceDef(`{"column": "state", "operator": "in", "value": [` + list + `]}`)})
	cat := NewSnapshot(models, audiences)

	tests := []struct {
		name, cond, self string
		want             []string
	}{
		{"cycle", `{"in_audience": "aud_cycle_a"}`, "",
			[]string{`conditions.in_audience: audience "aud_cycle_a" includes itself: aud_cycle_a -> aud_cycle_b -> aud_cycle_a; remove one of these inclusions`}},
		{"cycle through itself", `{"in_audience": "aud_self"}`, "", []string{`audience "aud_self" includes itself: aud_self -> aud_self`}},
		{"including itself", `{"all": [{"in_audience": "aud_ca_pro_big"}]}`, "aud_ca_pro",
			[]string{`conditions.all[0].in_audience: audience "aud_ca_pro" includes itself: aud_ca_pro -> aud_ca_pro_big -> aud_ca_pro`}},
		{"too deep", `{"in_audience": "aud_chain_0"}`, "", []string{"audiences include each other more than 8 levels deep"}},
		{"too deep with itself", `{"in_audience": "aud_chain_1"}`, "aud_chain_0", nil},
		{"no longer valid", `{"in_audience": "aud_stale"}`, "",
			[]string{`conditions.in_audience: audience "aud_stale" is no longer valid, fix it first: conditions.column: column "stat" does not exist on model customers; did you mean "state"?`}},
		{"garbled", `{"not_in_audience": "aud_garbled"}`, "", []string{`audience "aud_garbled" is no longer valid, fix it first: the definition is not valid JSON`}},
		{"old format", `{"not_in_audience": "aud_legacy"}`, "", []string{`audience "aud_legacy" is no longer valid, fix it first: unknown field "all"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Compile(mustParse(t, `{"model": "customers", "conditions": `+tt.cond+`}`), cat,
				Options{Dialect: sqlite.Dialect{}, Now: testNow, AudienceID: tt.self})
			if tt.want == nil {
				// Eight levels below the audience being compiled is allowed.
				if err != nil {
					t.Errorf("Compile: %v", err)
				}
				return
			}
			wantProblems(t, err, tt.want...)
		})
	}
	t.Run("too complex", func(t *testing.T) {
		t.Parallel()
		_, err := Compile(mustParse(t, `{"model": "customers", "conditions": {"in_audience": "aud_diamond_0"}}`), cat,
			Options{Dialect: sqlite.Dialect{}, Now: testNow})
		if !errors.Is(err, ErrTooComplex) || !errors.Is(err, store.ErrInvalid) {
			t.Errorf("got %v, want ErrTooComplex", err)
		}
	})
}

func TestCompileOptions(t *testing.T) {
	t.Parallel()
	def := mustParse(t, validDefinitions["everyone"])
	cat := testCatalog()
	if _, err := Compile(def, cat, Options{Now: testNow}); err == nil {
		t.Errorf("Compile without a dialect succeeded")
	}
	if _, err := Compile(def, cat, Options{Dialect: otherDialect{}, Now: testNow}); err == nil || !strings.Contains(err.Error(), `unsupported dialect "postgres"`) {
		t.Errorf("Compile for postgres: %v", err)
	}
	if _, err := Compile(def, cat, Options{Dialect: sqlite.Dialect{}}); err == nil {
		t.Errorf("Compile without a time succeeded")
	}
	_, err := Compile(mustParse(t, `{"model": "customers", "conditions": {"column": "stat", "operator": "is_null"}}`), cat, Options{Dialect: sqlite.Dialect{}, Now: testNow})
	wantProblems(t, err, `did you mean "state"?`)
}

type otherDialect struct{}

func (otherDialect) Name() string               { return "postgres" }
func (otherDialect) QuoteIdent(s string) string { return `"` + s + `"` }

func TestMembersProblems(t *testing.T) {
	t.Parallel()
	q, err := Compile(mustParse(t, validDefinitions["everyone"]), testCatalog(), Options{Dialect: trino.Dialect{}, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	_, err = q.Members([]string{"customer_id", "notes", "emial"}, 0)
	wantProblems(t, err,
		"limit: must be between 1 and 10000",
		`columns[1]: column "notes" of model customers is blocked: it never leaves the warehouse`,
		`columns[2]: column "emial" does not exist on model customers; did you mean "email"?`)
	_, err = q.Members(nil, 10)
	wantProblems(t, err, "columns: at least one column is needed")
	m, err := q.Members([]string{"email"}, MaxMembers)
	if err != nil || !strings.HasSuffix(m.SQL, `ORDER BY "p"."customer_id"`+"\nLIMIT 10000") {
		t.Errorf("Members = %q, %v", m.SQL, err)
	}
}
