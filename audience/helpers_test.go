package audience

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// testNow is the time the test warehouse is generated at and audiences
// are compiled at.
var testNow = time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC)

// testModels mirror the demo models (store/demo/seed.go) with fixed ids,
// plus a few that exercise what the demo lacks.
func testModels() []store.Model {
	col := func(name, typ, pii string) store.Column {
		return store.Column{Name: name, Type: typ, PII: pii, Nullable: true}
	}
	return []store.Model{
		{
			ID: "mdl_customers", Name: "customers", Table: "analytics.customers", PrimaryKey: "customer_id",
			Columns: []store.Column{
				col("customer_id", "integer", store.PIINone),
				col("email", "string", store.PIIRedacted),
				col("phone", "string", store.PIIRedacted),
				col("first_name", "string", store.PIIRedacted),
				col("last_name", "string", store.PIIRedacted),
				col("birth_date", "date", store.PIISyncOnly),
				col("city", "string", store.PIINone),
				col("state", "string", store.PIINone),
				col("country", "string", store.PIINone),
				col("region", "string", store.PIINone),
				col("signup_at", "timestamp", store.PIINone),
				col("plan", "string", store.PIINone),
				col("lifetime_value", "number", store.PIINone),
				col("marketing_consent", "boolean", store.PIINone),
				col("notes", "string", store.PIIBlocked),
			},
			Relationships: []store.Relationship{
				{Name: "orders", Model: "orders", ForeignKey: "customer_id", References: "customer_id"},
				{Name: "events", Model: "events", ForeignKey: "customer_id", References: "customer_id"},
			},
		},
		{
			ID: "mdl_orders", Name: "orders", Table: "analytics.orders", PrimaryKey: "order_id",
			Columns: []store.Column{
				col("order_id", "integer", store.PIINone),
				col("customer_id", "integer", store.PIINone),
				col("ordered_at", "timestamp", store.PIINone),
				col("amount", "number", store.PIINone),
				col("currency", "string", store.PIINone),
				col("channel", "string", store.PIINone),
				col("category", "string", store.PIINone),
			},
			Relationships: []store.Relationship{
				{Name: "customer", Model: "customers", ForeignKey: "customer_id", References: "customer_id"},
			},
		},
		{
			ID: "mdl_events", Name: "events", Table: "analytics.events", PrimaryKey: "event_id",
			Columns: []store.Column{
				col("event_id", "integer", store.PIINone),
				col("customer_id", "integer", store.PIINone),
				col("occurred_at", "timestamp", store.PIINone),
				col("event_type", "string", store.PIINone),
				col("properties", "json", store.PIINone),
			},
		},
		{
			// A SQL model over the demo data, with a column whose PII
			// level is unknown (treated as blocked) and one without a level.
			ID: "mdl_buyers", Name: "big_buyers", PrimaryKey: "customer_id",
			SQL: "SELECT customer_id, state, lifetime_value AS spend, notes AS memo, phone AS contact\nFROM analytics.customers\nWHERE lifetime_value > 500 -- big spenders",
			Columns: []store.Column{
				col("customer_id", "integer", store.PIINone),
				col("state", "string", store.PIINone),
				col("spend", "number", store.PIINone),
				col("memo", "string", "secret"),
				col("contact", "string", ""),
			},
			Relationships: []store.Relationship{
				{Name: "orders", Model: "orders", ForeignKey: "customer_id", References: "customer_id"},
				{Name: "broken", Model: "orders", ForeignKey: "buyer_id", References: "customer_id"},
				{Name: "ghost", Model: "ghosts", ForeignKey: "customer_id", References: "customer_id"},
			},
		},
	}
}

// audienceDef is a saved audience's definition: conditions over customers.
func audienceDef(conditions string) []byte {
	return []byte(`{"model": "customers", "conditions": ` + conditions + `}`)
}

// testAudiences are saved audiences for inclusion tests.
func testAudiences() []store.Audience {
	aud := func(id, model string, def []byte) store.Audience {
		return store.Audience{ID: id, Name: id, ModelID: model, Definition: def}
	}
	return []store.Audience{
		aud("aud_ca_pro", "mdl_customers", audienceDef(`{"all": [
			{"column": "state", "operator": "equals", "value": "CA"},
			{"column": "plan", "operator": "equals", "value": "pro"}]}`)),
		aud("aud_big_spenders", "mdl_customers", audienceDef(`{"relationship": "orders", "aggregate": "sum",
			"column": "amount", "operator": "greater_than", "value": 1000}`)),
		// Includes another: CA pro customers who are big spenders.
		aud("aud_ca_pro_big", "mdl_customers", audienceDef(`{"all": [
			{"in_audience": "aud_ca_pro"}, {"in_audience": "aud_big_spenders"}]}`)),
		// Two levels of inclusion, and an exclusion.
		aud("aud_nested", "mdl_customers", audienceDef(`{"any": [
			{"in_audience": "aud_ca_pro_big"},
			{"all": [{"column": "region", "operator": "equals", "value": "EMEA"}, {"not_in_audience": "aud_big_spenders"}]}]}`)),
		aud("aud_cycle_a", "mdl_customers", audienceDef(`{"all": [{"column": "plan", "operator": "equals", "value": "pro"}, {"in_audience": "aud_cycle_b"}]}`)),
		aud("aud_cycle_b", "mdl_customers", audienceDef(`{"any": [{"in_audience": "aud_cycle_a"}]}`)),
		aud("aud_self", "mdl_customers", audienceDef(`{"not_in_audience": "aud_self"}`)),
		aud("aud_orders", "mdl_orders", []byte(`{"model": "orders", "conditions": {"column": "channel", "operator": "equals", "value": "web"}}`)),
		aud("aud_stale", "mdl_customers", audienceDef(`{"column": "stat", "operator": "equals", "value": "CA"}`)),
		aud("aud_garbled", "mdl_customers", []byte(`{"all": [`)),
		aud("aud_legacy", "mdl_customers", []byte(`{"all": [{"column": "state", "operator": "equals", "value": "CA"}]}`)),
	}
}

func testCatalog() *Snapshot { return NewSnapshot(testModels(), testAudiences()) }

// mustParse parses a definition or fails the test.
func mustParse(t testing.TB, src string) *Definition {
	t.Helper()
	def, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse(%s): %v", src, err)
	}
	return def
}

// problemsOf returns the problems of a *ValidationError as "path: message"
// strings, failing the test for any other error.
func problemsOf(t testing.TB, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want a *ValidationError")
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %T %v, want a *ValidationError", err, err)
	}
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("errors.Is(%v, store.ErrInvalid) = false", err)
	}
	out := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		out[i] = p.String()
	}
	return out
}

// wantProblems checks that every wanted text appears in one of the
// problems.
func wantProblems(t testing.TB, err error, want ...string) {
	t.Helper()
	got := problemsOf(t, err)
	for _, w := range want {
		found := false
		for _, g := range got {
			if strings.Contains(g, w) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no problem contains %q; problems:\n  %s", w, strings.Join(got, "\n  "))
		}
	}
}

// failingCatalog fails every lookup, as a store that is down would.
type failingCatalog struct{}

func (failingCatalog) Model(string) (store.Model, error) {
	return store.Model{}, errors.New("store is down")
}

func (failingCatalog) Audience(string) (store.Audience, error) {
	return store.Audience{}, errors.New("store is down")
}

// canonical re-encodes JSON so two encodings compare equal.
func canonical(t testing.TB, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("canonical: %v", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// nested wraps a condition in n not levels.
func nested(n int, inner string) string {
	for range n {
		inner = fmt.Sprintf(`{"not": %s}`, inner)
	}
	return inner
}
