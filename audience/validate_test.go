package audience

import (
	"errors"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

func TestValidateValid(t *testing.T) {
	t.Parallel()
	cat := testCatalog()
	for name, src := range validDefinitions {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := Validate(mustParse(t, src), cat); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateProblems(t *testing.T) {
	t.Parallel()
	cond := func(c string) string { return `{"model": "customers", "conditions": ` + c + `}` }
	rel := func(extra string) string {
		return cond(`{"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 0, ` + extra + `}`)
	}
	tests := []struct {
		name, src string
		want      []string
	}{
		{"misspelt column", cond(`{"all": [{"column": "plan", "operator": "is_null"}, {"column": "region", "operator": "is_null"}, {"column": "stat", "operator": "equals", "value": "CA"}]}`),
			[]string{`conditions.all[2].column: column "stat" does not exist on model customers; did you mean "state"?`}},
		{"unknown column lists columns", cond(`{"column": "zodiac", "operator": "is_null"}`),
			[]string{`column "zodiac" does not exist on model customers; expected one of customer_id, email, phone`}},
		{"misspelt model", `{"model": "customer", "conditions": {"all": []}}`, []string{`model: model "customer" does not exist; did you mean "customers"?`}},
		{"misspelt relationship", cond(`{"relationship": "order", "aggregate": "count", "operator": "greater_than", "value": 0}`),
			[]string{`conditions.relationship: relationship "order" does not exist on model customers; did you mean "orders"?`}},
		{"no relationships", `{"model": "events", "conditions": {"relationship": "customer", "aggregate": "count", "operator": "greater_than", "value": 0}}`,
			[]string{"model events has no relationships"}},
		{"relationship to a missing model", `{"model": "big_buyers", "conditions": {"relationship": "ghost", "aggregate": "count", "operator": "greater_than", "value": 0}}`,
			[]string{`relationship ghost points to model "ghosts", which does not exist`}},
		{"relationship with a bad key", `{"model": "big_buyers", "conditions": {"relationship": "broken", "aggregate": "count", "operator": "greater_than", "value": 0}}`,
			[]string{`relationship broken cannot be used: its foreign key "buyer_id" is not a column of model orders`}},
		{"contains on a number", cond(`{"column": "lifetime_value", "operator": "contains", "value": "1"}`),
			[]string{"conditions.operator: operator contains applies to string columns; column lifetime_value is number; it takes equals, not_equals, greater_than"}},
		{"within_last_days on a string", cond(`{"column": "state", "operator": "within_last_days", "value": 3}`),
			[]string{"conditions.operator: operator within_last_days applies to date and timestamp columns; column state is string"}},
		{"greater_than on a string", cond(`{"column": "plan", "operator": "greater_than", "value": "pro"}`),
			[]string{"operator greater_than does not apply to column plan (string)"}},
		{"is_true on a string", cond(`{"column": "plan", "operator": "is_true"}`), []string{"operator is_true does not apply to column plan (string)"}},
		{"in on a timestamp", cond(`{"column": "signup_at", "operator": "in", "value": ["2024-01-01"]}`), []string{"operator in does not apply to column signup_at (timestamp)"}},
		{"equals on json", `{"model": "events", "conditions": {"column": "properties", "operator": "equals", "value": "{}"}}`,
			[]string{"operator equals does not apply to column properties (json); it takes is_null, is_not_null"}},
		{"number for a string", cond(`{"column": "state", "operator": "equals", "value": 5}`), []string{`conditions.value: expected a string, got a number (write it in quotes: "5")`}},
		{"string for a number", cond(`{"all": [{"column": "plan", "operator": "is_null"}, {"column": "plan", "operator": "is_null"}, {"column": "lifetime_value", "operator": "equals", "value": "lots"}]}`),
			[]string{"conditions.all[2].value: expected a number, got a string"}},
		{"fraction for an integer", cond(`{"column": "customer_id", "operator": "equals", "value": 1.5}`), []string{"conditions.value: expected a whole number, got 1.5"}},
		{"text for a boolean", cond(`{"column": "marketing_consent", "operator": "equals", "value": "yes"}`), []string{"conditions.value: expected true or false, got a string"}},
		{"bad date", cond(`{"column": "birth_date", "operator": "equals", "value": "yesterday"}`), []string{`conditions.value: expected a date such as "2024-05-31", got "yesterday"`}},
		{"bad timestamp", cond(`{"column": "signup_at", "operator": "greater_than", "value": "2024-13-01 00:00:00"}`), []string{"conditions.value: expected a timestamp"}},
		{"bad list item", cond(`{"column": "customer_id", "operator": "in", "value": [1, "two", 3]}`), []string{"conditions.value[1]: expected a whole number, got a string"}},
		{"between reversed", cond(`{"column": "lifetime_value", "operator": "between", "value": [500, 100]}`), []string{"conditions.value: the lower bound comes first: [low, high]"}},
		{"date between reversed", cond(`{"column": "birth_date", "operator": "not_between", "value": ["2000-01-01", "1990-01-01"]}`), []string{"the lower bound comes first"}},
		{"empty contains", cond(`{"column": "email", "operator": "contains", "value": ""}`), []string{"conditions.value: must not be empty with contains"}},
		{"blocked column", cond(`{"column": "notes", "operator": "contains", "value": "VIP"}`),
			[]string{`conditions.column: column "notes" of model customers is blocked (PII level blocked): a blocked column can never be used to select people`}},
		{"unknown PII level is blocked", `{"model": "big_buyers", "conditions": {"column": "memo", "operator": "is_not_null"}}`,
			[]string{`column "memo" of model big_buyers is blocked (PII level secret)`}},
		{"missing PII level is blocked", `{"model": "big_buyers", "conditions": {"column": "contact", "operator": "is_null"}}`,
			[]string{`column "contact" of model big_buyers is blocked (PII level not set)`}},
		{"sum of a string", cond(`{"relationship": "orders", "aggregate": "sum", "column": "channel", "operator": "greater_than", "value": 1}`),
			[]string{"conditions.column: cannot sum column channel of model orders (string): sum, min, max and avg need an integer or number column; to count rows use the aggregate count"}},
		{"aggregate column misspelt", cond(`{"relationship": "orders", "aggregate": "sum", "column": "amout", "operator": "greater_than", "value": 1}`),
			[]string{`conditions.column: column "amout" does not exist on model orders; did you mean "amount"?`}},
		{"aggregate of a non-numeric column", cond(`{"relationship": "orders", "aggregate": "max", "column": "ordered_at", "operator": "greater_than", "value": 1}`),
			[]string{"conditions.column: cannot max column ordered_at of model orders (timestamp): sum, min, max and avg need an integer or number column"}},
		{"window on a string", rel(`"within": {"column": "channel", "last_days": 30}`),
			[]string{"conditions.within.column: a time window needs a date or timestamp column; column channel of model orders is string"}},
		{"window column misspelt", rel(`"within": {"column": "orderd_at", "last_days": 30}`),
			[]string{`conditions.within.column: column "orderd_at" does not exist on model orders; did you mean "ordered_at"?`}},
		{"where uses the related columns", rel(`"where": {"column": "state", "operator": "equals", "value": "CA"}`),
			[]string{`conditions.where.column: column "state" does not exist on model orders`}},
		{"where value type", rel(`"where": {"all": [{"column": "amount", "operator": "greater_than", "value": "10"}]}`),
			[]string{"conditions.where.all[0].value: expected a number, got a string"}},
		{"unknown audience", cond(`{"in_audience": "aud_nope"}`), []string{`conditions.in_audience: audience "aud_nope" does not exist`}},
		{"audience over another model", cond(`{"not_in_audience": "aud_orders"}`),
			[]string{`conditions.not_in_audience: audience "aud_orders" is over model orders, not customers: only audiences over the same model can be included`}},
		{"every problem listed", cond(`{"all": [{"column": "stat", "operator": "equals", "value": "CA"}, {"column": "notes", "operator": "is_null"}, {"in_audience": "aud_nope"}]}`),
			[]string{"conditions.all[0].column", "conditions.all[1].column", "conditions.all[2].in_audience"}},
	}
	cat := testCatalog()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			def, err := Parse([]byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			wantProblems(t, Validate(def, cat), tt.want...)
		})
	}

	t.Run("blocked columns are never suggested", func(t *testing.T) {
		t.Parallel()
		err := Validate(mustParse(t, cond(`{"column": "note", "operator": "is_null"}`)), cat)
		for _, p := range problemsOf(t, err) {
			if strings.Contains(p, "notes") {
				t.Errorf("a problem offers the blocked column: %s", p)
			}
		}
	})
}

func TestValidatePIILevels(t *testing.T) {
	t.Parallel()
	// Redacted and sync-only columns may select people: only membership
	// leaves the warehouse, never the value.
	cat := testCatalog()
	for _, src := range []string{
		`{"model": "customers", "conditions": {"column": "email", "operator": "ends_with", "value": "@example.org"}}`,
		`{"model": "customers", "conditions": {"column": "birth_date", "operator": "within_last_days", "value": 9000}}`,
		`{"model": "customers", "conditions": {"column": "notes", "operator": "is_null"}}`,
	} {
		err := Validate(mustParse(t, src), cat)
		blocked := strings.Contains(src, "notes")
		if blocked != (err != nil) {
			t.Errorf("Validate(%s) = %v; want an error: %v", src, err, blocked)
		}
	}
}

func TestValidateCatalogFailure(t *testing.T) {
	t.Parallel()
	err := Validate(mustParse(t, validDefinitions["ca pro web orders"]), failingCatalog{})
	if err == nil || errors.Is(err, store.ErrInvalid) {
		t.Fatalf("got %v, want a catalog failure that is not ErrInvalid", err)
	}
	if _, ok := asValidation(err); ok {
		t.Errorf("a catalog failure came back as a *ValidationError: %v", err)
	}
	if !strings.Contains(err.Error(), "store is down") {
		t.Errorf("error %q does not wrap the cause", err)
	}
	if err := Validate(mustParse(t, validDefinitions["everyone"]), nil); err == nil {
		t.Errorf("Validate with no catalog succeeded")
	}
}

func TestSnapshot(t *testing.T) {
	t.Parallel()
	cat := testCatalog()
	for _, key := range []string{"customers", "mdl_customers"} {
		m, err := cat.Model(key)
		if err != nil || m.Name != "customers" {
			t.Errorf("Model(%q) = %v, %v", key, m.Name, err)
		}
	}
	if _, err := cat.Model("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Model(nope) error = %v, want ErrNotFound", err)
	}
	if _, err := cat.Audience("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Audience(nope) error = %v, want ErrNotFound", err)
	}
	if a, err := cat.Audience("aud_ca_pro"); err != nil || a.ModelID != "mdl_customers" {
		t.Errorf("Audience(aud_ca_pro) = %+v, %v", a, err)
	}
	names := cat.ModelNames()
	if strings.Join(names, ",") != "big_buyers,customers,events,orders" {
		t.Errorf("ModelNames() = %v", names)
	}
	names[0] = "changed"
	if cat.ModelNames()[0] != "big_buyers" {
		t.Errorf("ModelNames returned the snapshot's own slice")
	}
}

func TestSnapshotNeverTakesANameForAnID(t *testing.T) {
	t.Parallel()
	// An impostor named like the customers model's id (which stores
	// refuse; a snapshot must not depend on that), and a model whose name
	// the customers model once had.
	models := append(testModels(),
		store.Model{ID: "mdl_impostor", Name: "mdl_customers", Table: "analytics.orders", PrimaryKey: "order_id"},
		store.Model{ID: "mdl_newcomer", Name: "people", Table: "analytics.events", PrimaryKey: "event_id"})
	def := []byte(`{"model":"people","conditions":{"column":"state","operator":"equals","value":"CA"}}`)
	saved := store.Audience{ID: "aud_people_ca", ModelID: "mdl_customers", Definition: def}
	cat := NewSnapshot(models, []store.Audience{saved})
	cases := []struct{ ref, want string }{
		{"mdl_customers", "mdl_customers"},
		{"customers", "mdl_customers"},
		{"people", "mdl_newcomer"},
		{"mdl_impostor", "mdl_impostor"},
	}
	for _, tc := range cases {
		if m, err := cat.Model(tc.ref); err != nil || m.ID != tc.want {
			t.Errorf("Model(%q) = %s, %v; want %s", tc.ref, m.ID, err, tc.want)
		}
	}
	// A saved audience is over its own model, whatever its definition
	// calls it, also when another audience includes it.
	parsed, err := ParseSaved(saved)
	if err != nil || parsed.Model != "mdl_customers" {
		t.Fatalf("ParseSaved = %+v, %v", parsed, err)
	}
	incl, err := Parse([]byte(`{"model":"customers","conditions":{"in_audience":"aud_people_ca"}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, def := range []*Definition{parsed, incl} {
		q, err := Compile(def, cat, Options{Dialect: sqlite.Dialect{}, Now: testNow})
		if err != nil || q.Model().ID != "mdl_customers" || strings.Contains(q.Count().SQL, "events") {
			t.Errorf("compiled over %s: %v, %v", q.Model().ID, q.Count().SQL, err)
		}
	}
}

// A model named like another model's id never stands in for that model,
// whichever order the models come in.
func TestSnapshotIDsWinOverNames(t *testing.T) {
	t.Parallel()
	real := store.Model{ID: "mdl_real", Name: "customers"}
	impostor := store.Model{ID: "mdl_other", Name: "mdl_real"}
	for _, models := range [][]store.Model{{real, impostor}, {impostor, real}} {
		m, err := NewSnapshot(models, nil).Model("mdl_real")
		if err != nil || m.ID != "mdl_real" {
			t.Errorf("Model(mdl_real) over %v = %+v, %v; want the model with that id", models, m, err)
		}
	}
}
