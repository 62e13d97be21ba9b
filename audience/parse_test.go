package audience

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// validDefinitions are well-formed definitions over the test models, used
// by the parse, schema and validation tests.
var validDefinitions = map[string]string{
	"seeded california pro": `{"model":"customers","conditions":{"all":[{"column":"state","operator":"equals","value":"CA"},{"column":"plan","operator":"equals","value":"pro"}]}}`,
	"seeded consent":        `{"model":"customers","conditions":{"all":[{"column":"marketing_consent","operator":"is_true"},{"column":"email","operator":"is_not_null"}]}}`,
	"ca pro web orders": `{"model": "customers", "conditions": {"all": [
		{"column": "state", "operator": "equals", "value": "CA"},
		{"column": "plan", "operator": "equals", "value": "pro"},
		{"relationship": "orders", "aggregate": "count", "operator": "greater_or_equal", "value": 2,
		 "within": {"column": "ordered_at", "last_days": 90},
		 "where": {"column": "channel", "operator": "equals", "value": "web"}}]}}`,
	"single condition": `{"model": "customers", "conditions": {"column": "region", "operator": "in", "value": ["NA", "EMEA"]}}`,
	"everyone":         `{"model": "customers", "conditions": {"all": []}}`,
	"every operator": `{"model": "customers", "conditions": {"any": [
		{"column": "state", "operator": "equals", "value": "CA"},
		{"column": "state", "operator": "not_equals", "value": "CA"},
		{"column": "email", "operator": "contains", "value": "smith"},
		{"column": "email", "operator": "not_contains", "value": "smith"},
		{"column": "city", "operator": "starts_with", "value": "San"},
		{"column": "email", "operator": "ends_with", "value": ".org"},
		{"column": "lifetime_value", "operator": "greater_than", "value": 10},
		{"column": "lifetime_value", "operator": "greater_or_equal", "value": 10.5},
		{"column": "customer_id", "operator": "less_than", "value": 100},
		{"column": "customer_id", "operator": "less_or_equal", "value": 1e2},
		{"column": "birth_date", "operator": "between", "value": ["1980-01-01", "1989-12-31"]},
		{"column": "signup_at", "operator": "not_between", "value": ["2024-01-01", "2024-12-31 23:59:59"]},
		{"column": "plan", "operator": "in", "value": ["pro", "enterprise"]},
		{"column": "customer_id", "operator": "not_in", "value": [1, 2, 3]},
		{"column": "phone", "operator": "is_null"},
		{"column": "phone", "operator": "is_not_null"},
		{"column": "marketing_consent", "operator": "is_true"},
		{"column": "marketing_consent", "operator": "is_false"},
		{"column": "signup_at", "operator": "within_last_days", "value": 30}]}}`,
	"related aggregates": `{"model": "customers", "conditions": {"all": [
		{"relationship": "orders", "aggregate": "sum", "column": "amount", "operator": "greater_than", "value": 500},
		{"relationship": "orders", "aggregate": "avg", "column": "amount", "operator": "between", "value": [20, 200]},
		{"relationship": "orders", "aggregate": "min", "column": "amount", "operator": "less_than", "value": 100},
		{"relationship": "orders", "aggregate": "max", "column": "amount", "operator": "not_between", "value": [0, 10]},
		{"relationship": "events", "aggregate": "count", "operator": "equals", "value": 0,
		 "within": {"column": "occurred_at", "last_days": 30},
		 "where": {"any": [{"column": "event_type", "operator": "in", "value": ["checkout", "add_to_cart"]},
		                   {"not": {"column": "properties", "operator": "is_null"}}]}}]}}`,
	"nesting": `{"model": "customers", "conditions": {"all": [
		{"column": "region", "operator": "equals", "value": "NA"},
		{"any": [{"column": "plan", "operator": "equals", "value": "enterprise"},
		         {"not": {"all": [{"column": "lifetime_value", "operator": "less_than", "value": 100},
		                          {"column": "marketing_consent", "operator": "is_false"}]}}]},
		{"not": {"column": "state", "operator": "equals", "value": "NY"}}]}}`,
	"inclusion": `{"model": "customers", "conditions": {"all": [
		{"in_audience": "aud_ca_pro"},
		{"not_in_audience": "aud_big_spenders"}]}}`,
	"deepest": `{"model": "customers", "conditions": ` + nested(7, `{"column": "plan", "operator": "is_null"}`) + `}`,
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	for name, src := range validDefinitions {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			def := mustParse(t, src)
			// The canonical encoding parses back to the same definition.
			out, err := json.Marshal(def)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			again := mustParse(t, string(out))
			if !reflect.DeepEqual(def, again) {
				t.Errorf("round trip changed the definition:\n got %#v\nwant %#v", again, def)
			}
			if canonical(t, out) != canonical(t, []byte(src)) {
				t.Errorf("canonical encoding differs from the input:\n got %s\nwant %s", canonical(t, out), canonical(t, []byte(src)))
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	t.Parallel()
	def := mustParse(t, validDefinitions["ca pro web orders"])
	if def.Model != "customers" || len(def.Conditions.All) != 3 {
		t.Fatalf("got %+v", def)
	}
	rel := def.Conditions.All[2]
	want := Condition{
		Relationship: "orders", Aggregate: Count, Operator: GreaterOrEqual, Value: json.Number("2"),
		Within: &Window{Column: "ordered_at", LastDays: 90},
		Where:  &Condition{Column: "channel", Operator: Equals, Value: "web"},
	}
	if !reflect.DeepEqual(rel, want) {
		t.Errorf("relationship condition:\n got %#v\nwant %#v", rel, want)
	}
	// encoding/json goes through the same strict decoder.
	var viaJSON Definition
	if err := json.Unmarshal([]byte(validDefinitions["ca pro web orders"]), &viaJSON); err != nil {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(&viaJSON, def) {
		t.Errorf("json.Unmarshal differs from Parse")
	}
	if err := json.Unmarshal([]byte(`{"model":"customers","conditions":{"colum":"x"}}`), &viaJSON); err == nil {
		t.Errorf("json.Unmarshal accepted an unknown field")
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cond := func(c string) string { return `{"model": "customers", "conditions": ` + c + `}` }
	many := func(n int, item string) string {
		items := make([]string, n)
		for i := range items {
			items[i] = item
		}
		return strings.Join(items, ",")
	}
	tests := []struct {
		name, src string
		want      []string
	}{
		{"not json", `{"model": "customers",`, []string{"not valid JSON"}},
		{"trailing data", cond(`{"all": []}`) + ` {}`, []string{"unexpected data after the definition"}},
		{"not an object", `[1, 2]`, []string{"expected an object with model and conditions, got a list"}},
		{"invalid utf-8", "{\"model\": \"cust\xffomers\", \"conditions\": {\"all\": []}}", []string{"not valid UTF-8"}},
		{"too large", cond(`{"column": "state", "operator": "equals", "value": "` + strings.Repeat("x", MaxBytes) + `"}`), []string{"bytes; at most"}},
		{"missing model", `{"conditions": {"all": []}}`, []string{`model: is required`}},
		{"missing conditions", `{"model": "customers"}`, []string{`conditions: is required`}},
		{"model not a string", `{"model": 7, "conditions": {"all": []}}`, []string{"model: expected a string, got a number"}},
		{"unknown top field", `{"model": "customers", "conditions": {"all": []}, "modle": 1}`, []string{`unknown field "modle"; did you mean "model"?`}},
		{"unknown field", cond(`{"all": [{"colum": "state", "operator": "equals", "value": "CA"}]}`),
			[]string{`conditions.all[0]: unknown field "colum"; did you mean "column"?`}},
		{"duplicate field", cond(`{"column": "state", "column": "plan", "operator": "is_null"}`), []string{"conditions.column: appears more than once"}},
		{"empty condition", cond(`{"all": [{}]}`), []string{"conditions.all[0]: empty condition"}},
		{"two forms", cond(`{"all": [], "any": []}`), []string{`a condition has exactly one of`, `this one has "all" and "any"`}},
		{"column with all", cond(`{"all": [], "column": "state"}`), []string{`conditions.column: is not allowed in an all group`}},
		{"operator without column", cond(`{"operator": "equals", "value": 1}`), []string{"conditions.column: is required"}},
		{"where without relationship", cond(`{"column": "state", "operator": "is_null", "where": {"all": []}}`),
			[]string{"conditions.where: is not allowed in a column condition"}},
		{"all not a list", cond(`{"all": {"column": "state"}}`), []string{"conditions.all: expected a list of conditions, got an object"}},
		{"condition not an object", cond(`{"all": ["state = CA"]}`), []string{"conditions.all[0]: expected an object (a condition), got a string"}},
		{"empty column", cond(`{"column": "", "operator": "is_null"}`), []string{"conditions.column: must not be empty"}},
		{"column not a string", cond(`{"all": [{"column": "a"}, {"column": "b"}, {"column": 3, "operator": "is_null"}]}`),
			[]string{"conditions.all[2].column: expected a string, got a number"}},
		{"missing operator", cond(`{"column": "state"}`), []string{"conditions.operator: is required"}},
		{"unknown operator", cond(`{"column": "state", "operator": "equal", "value": "CA"}`), []string{`conditions.operator: unknown operator "equal"; did you mean "equals"?`}},
		{"greater_then", cond(`{"column": "lifetime_value", "operator": "greater_then", "value": 1}`), []string{`did you mean "greater_than"?`}},
		{"missing value", cond(`{"column": "state", "operator": "equals"}`), []string{"conditions.value: is required with equals"}},
		{"null value", cond(`{"column": "state", "operator": "equals", "value": null}`), []string{"conditions.value: must not be null; to select missing values use the operator is_null"}},
		{"object value", cond(`{"column": "state", "operator": "equals", "value": {"eq": "CA"}}`), []string{"conditions.value: expected a string, number, boolean or list, got an object"}},
		{"equals a list", cond(`{"column": "state", "operator": "equals", "value": ["CA", "NY"]}`), []string{"conditions.value: expected a single value; to match any of several values use the operator in"}},
		{"value with is_null", cond(`{"column": "state", "operator": "is_null", "value": true}`), []string{"conditions.value: is not used with is_null; remove it"}},
		{"between one value", cond(`{"column": "lifetime_value", "operator": "between", "value": [1]}`), []string{"conditions.value: expected a list of two values"}},
		{"between scalar", cond(`{"column": "lifetime_value", "operator": "between", "value": 1}`), []string{"conditions.value: expected a list of two values"}},
		{"in scalar", cond(`{"column": "state", "operator": "in", "value": "CA"}`), []string{"conditions.value: expected a list of values"}},
		{"in empty", cond(`{"column": "state", "operator": "in", "value": []}`), []string{"conditions.value: needs at least one value"}},
		{"in too long", cond(`{"column": "customer_id", "operator": "in", "value": [` + many(MaxListValues+1, "1") + `]}`), []string{"values; at most 1000 are allowed"}},
		{"in nested list", cond(`{"column": "state", "operator": "in", "value": ["CA", ["NY"]]}`), []string{"conditions.value[1]: expected a string, number or boolean, got a list"}},
		{"string too long", cond(`{"column": "state", "operator": "equals", "value": "` + strings.Repeat("é", MaxStringLength+1) + `"}`), []string{"conditions.value: is longer than 1000 characters"}},
		{"nul in value", cond(`{"column": "state", "operator": "equals", "value": "C\u0000A"}`), []string{"must not contain NUL"}},
		{"days not whole", cond(`{"column": "signup_at", "operator": "within_last_days", "value": 1.5}`), []string{"conditions.value: expected a whole number of days between 1 and 36500"}},
		{"days zero", cond(`{"column": "signup_at", "operator": "within_last_days", "value": 0}`), []string{"expected a whole number of days between 1 and 36500"}},
		{"days text", cond(`{"column": "signup_at", "operator": "within_last_days", "value": "30"}`), []string{"expected a whole number of days"}},
		{"huge number", cond(`{"column": "lifetime_value", "operator": "greater_than", "value": 1e999}`), []string{"is not a number within range"}},
		{"any empty", cond(`{"any": []}`), []string{"conditions.any: needs at least one condition"}},
		{"too deep", cond(nested(8, `{"column": "plan", "operator": "is_null"}`)), []string{"conditions.not.not.not.not.not.not.not.not: nested too deeply"}},
		{"json too deep", strings.Repeat(`{"not": `, 100) + `{}` + strings.Repeat(`}`, 100), []string{"nests more than"}},
		{"too many conditions", cond(`{"all": [` + many(MaxConditions, `{"column": "plan", "operator": "is_null"}`) + `]}`), []string{"conditions.all[99]: too many conditions"}},
		{"too many values", cond(`{"all": [` + many(6, `{"column": "customer_id", "operator": "in", "value": [`+many(1000, "1")+`]}`) + `]}`), []string{"too many values"}},
		{"relationship without aggregate", cond(`{"relationship": "orders", "operator": "greater_than", "value": 1}`), []string{`conditions.aggregate: is required: one of "count", "sum", "min", "max" or "avg"`}},
		{"unknown aggregate", cond(`{"relationship": "orders", "aggregate": "total", "column": "amount", "operator": "greater_than", "value": 1}`), []string{`unknown aggregate "total"`}},
		{"count with column", cond(`{"relationship": "orders", "aggregate": "count", "column": "amount", "operator": "greater_than", "value": 1}`), []string{"conditions.column: is not used with the aggregate count"}},
		{"sum without column", cond(`{"relationship": "orders", "aggregate": "sum", "operator": "greater_than", "value": 1}`), []string{"conditions.column: is required: the numeric column of the related model to sum"}},
		{"aggregate contains", cond(`{"relationship": "orders", "aggregate": "count", "operator": "contains", "value": 1}`), []string{`operator "contains" does not apply to an aggregate`}},
		{"aggregate text value", cond(`{"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": "two"}`), []string{"conditions.value: expected a number, got a string"}},
		{"count fraction", cond(`{"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 2.5}`), []string{"conditions.value: expected a whole number of rows"}},
		{"count between texts", cond(`{"relationship": "orders", "aggregate": "count", "operator": "between", "value": [1, "9"]}`), []string{"conditions.value[1]: expected a number, got a string"}},
		{"window not an object", cond(`{"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 1, "within": 90}`), []string{"conditions.within: expected an object"}},
		{"window fields", cond(`{"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 1, "within": {"days": 90}}`),
			[]string{`conditions.within: unknown field "days"`, "conditions.within.column: is required", "conditions.within.last_days: is required"}},
		{"window days", cond(`{"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 1, "within": {"column": "ordered_at", "last_days": 99999}}`),
			[]string{"conditions.within.last_days: must be between 1 and 36500"}},
		{"relationship in where", cond(`{"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 1, "where": {"relationship": "customer", "aggregate": "count", "operator": "greater_than", "value": 0}}`),
			[]string{"conditions.where: a where condition may only use all, any, not and column conditions"}},
		{"audience in where", cond(`{"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 1, "where": {"all": [{"in_audience": "aud_ca_pro"}]}}`),
			[]string{"conditions.where.all[0]: a where condition may only use"}},
		{"audience with extra", cond(`{"in_audience": "aud_ca_pro", "operator": "equals"}`), []string{"conditions.operator: is not allowed in an in_audience condition"}},
		{"audience not a string", cond(`{"not_in_audience": ["aud_ca_pro"]}`), []string{"conditions.not_in_audience: expected a string, got a list"}},
		{"several problems", cond(`{"all": [{"column": "state", "operator": "equal", "value": "CA"}, {"column": "plan", "operator": "in", "value": "pro"}, {"any": []}]}`),
			[]string{"conditions.all[0].operator: unknown operator", "conditions.all[1].value: expected a list of values", "conditions.all[2].any: needs at least one condition"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			def, err := Parse([]byte(tt.src))
			if err == nil {
				t.Fatalf("Parse accepted %s as %+v", tt.src, def)
			}
			wantProblems(t, err, tt.want...)
		})
	}
}

func TestCheckGoDefinitions(t *testing.T) {
	t.Parallel()
	// A definition built in Go goes through the same checks.
	good := &Definition{Model: "customers", Conditions: Condition{All: []Condition{
		{Column: "lifetime_value", Operator: Between, Value: []float64{10, 20}},
		{Column: "state", Operator: In, Value: []string{"CA", "NY"}},
		{Column: "customer_id", Operator: GreaterThan, Value: 5},
	}}}
	if err := Check(good); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := Validate(good, testCatalog()); err != nil {
		t.Errorf("Validate: %v", err)
	}
	bad := &Definition{Conditions: Condition{
		Column: "state", Operator: Equals, Value: "CA", Not: &Condition{All: []Condition{}},
	}}
	wantProblems(t, Check(bad), "model: is required", `conditions: a condition has exactly one of`)
	wantProblems(t, Check(&Definition{Model: "customers", Conditions: Condition{Column: "x", Operator: Equals, Value: struct{}{}}}),
		"conditions.value: expected a string, number or boolean, got struct {}")
	wantProblems(t, Check(&Definition{Model: "customers", Conditions: Condition{Column: "x", Operator: Equals, Value: 1.0 / zero()}}),
		"conditions.value: is not a finite number")
	wantProblems(t, Check(&Definition{Model: "customers", Conditions: Condition{Column: "x", Operator: IsNull, Aggregate: Sum}}),
		"conditions.aggregate: is not allowed in a column condition")
	wantProblems(t, Check(nil), "the definition is missing")
}

func zero() float64 { return 0 }

func TestValidationErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`{"model": "customers", "conditions": {"all": [{"column": "state", "operator": "equal", "value": "CA"}, {"any": []}]}}`))
	want := `invalid audience definition: conditions.all[0].operator: unknown operator "equal"; did you mean "equals"?; conditions.all[1].any: needs at least one condition`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	// A flood of problems is cut short with a count.
	items := make([]string, 60)
	for i := range items {
		items[i] = fmt.Sprintf(`{"column": "c%d", "operator": "nope"}`, i)
	}
	_, err = Parse([]byte(`{"model": "customers", "conditions": {"all": [` + strings.Join(items, ",") + `]}}`))
	got := problemsOf(t, err)
	if len(got) != maxProblems+1 || got[maxProblems] != "and 35 more problems" {
		t.Errorf("got %d problems ending %q", len(got), got[len(got)-1])
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	cols := []string{"customer_id", "email", "state", "plan", "lifetime_value", "signup_at"}
	tests := []struct{ in, want string }{
		{"stat", "state"},
		{"State", "state"},
		{"emial", "email"},
		{"lifetime", "lifetime_value"},
		{"signup", "signup_at"},
		{"customerid", "customer_id"},
		{"zzz", ""},
		{"id", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, cols); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
