package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// A model change must not pull the ground from under what is built on it,
// and no name may pose as another object's id.

func TestModelUpdatesThatBreakDependentsAreRefused(t *testing.T) {
	t.Parallel()
	const people = "SELECT customer_id, state, plan, region FROM customers"
	cases := []struct {
		name string
		// arrange saves what depends on the model, as a person would, and
		// returns the audience the refusal must name.
		arrange func(t *testing.T, e *env) store.Audience
		args    map[string]any
		// also is what else the refusal must name.
		also string
	}{
		{
			name: "dropping a column an audience's condition uses",
			arrange: func(t *testing.T, e *env) store.Audience {
				return e.saveAudience(t, "people in CA", "people", map[string]any{"column": "state", "operator": "equals", "value": "CA"})
			},
			args: map[string]any{"model": "people", "sql": "SELECT customer_id, plan, region FROM customers"},
		},
		{
			name: "retyping a column an audience's condition uses",
			arrange: func(t *testing.T, e *env) store.Audience {
				return e.saveAudience(t, "people in CA", "people", map[string]any{"column": "state", "operator": "equals", "value": "CA"})
			},
			args: map[string]any{"model": "people", "columns": []map[string]any{{"name": "state", "pii": "none", "type": "json"}}},
		},
		{
			name: "removing a relationship an audience uses",
			arrange: func(t *testing.T, e *env) store.Audience {
				return e.saveAudience(t, "buyers", "customers", map[string]any{"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 0})
			},
			args: map[string]any{"model": "customers", "relationships": []map[string]any{}},
		},
		{
			name: "emptying a model a synced audience is over",
			arrange: func(t *testing.T, e *env) store.Audience {
				a := e.saveAudience(t, "pro people", "people", map[string]any{"column": "plan", "operator": "equals", "value": "pro"})
				e.syncToSandbox(t, a)
				return a
			},
			args: map[string]any{"model": "people", "sql": people + " WHERE 1 = 0"},
			also: "syn_",
		},
		{
			name: "retargeting a model a synced audience is over",
			arrange: func(t *testing.T, e *env) store.Audience {
				return e.audienceNamed(t, "California pro customers") // synced in the demo
			},
			args: map[string]any{"model": "customers", "sql": "SELECT * FROM customers WHERE region = 'EMEA'"},
			also: "syn_",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			ctx := context.Background()
			if _, err := e.db.CreateModel(ctx, store.Model{WorkspaceID: e.ws.ID, Name: "people", SQL: people, PrimaryKey: "customer_id",
				Columns: []store.Column{sourced("customer_id", "integer"), sourced("state", "string"),
					sourced("plan", "string"), sourced("region", "string")}}); err != nil {
				t.Fatal(err)
			}
			dep := tc.arrange(t, e)
			before, err := e.db.GetModel(ctx, e.ws.ID, tc.args["model"].(string))
			if err != nil {
				t.Fatal(err)
			}
			key, _ := e.key(t, "agent", "member", store.KindAgent, nil)
			c := e.client(t, key)

			// check_action refuses it too: it can never be queued for a human.
			for _, tool := range []string{"check_action", "update_model"} {
				args := tc.args
				if tool == "check_action" {
					args = map[string]any{"tool": "update_model", "arguments": tc.args}
				}
				res := call(t, c, tool, args)
				msg := text(res)
				if !res.IsError || !strings.Contains(msg, "was not changed") || !strings.Contains(msg, dep.ID) || !strings.Contains(msg, dep.Name) ||
					(tc.also != "" && !strings.Contains(msg, tc.also)) {
					t.Errorf("%s = %s, want a refusal naming audience %s (%s) %s", tool, msg, dep.Name, dep.ID, tc.also)
				}
				if strings.Contains(msg, "approval") {
					t.Errorf("%s queued a change that cannot run: %s", tool, msg)
				}
			}
			after, err := e.db.GetModel(ctx, e.ws.ID, before.ID)
			if err != nil || !after.UpdatedAt.Equal(before.UpdatedAt) || after.SQL != before.SQL || len(after.Relationships) != len(before.Relationships) {
				t.Errorf("the refused change was stored: %+v", after)
			}
		})
	}
}

func TestRenamedModelKeepsItsAudiences(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent", "member", store.KindAgent, nil)
	c := e.client(t, key)
	ca := e.warehouseCount(t, "SELECT count(*) FROM customers WHERE state = 'CA'")
	all := e.warehouseCount(t, "SELECT count(*) FROM customers")
	if ca == 0 || ca == all {
		t.Fatalf("%d of %d customers are in CA: the test needs some in and some out", ca, all)
	}
	cols := []map[string]any{{"name": "customer_id", "pii": "none"}, {"name": "state", "pii": "none"}}
	structured(t, call(t, c, "create_model", map[string]any{"name": "people", "sql": "SELECT customer_id, state FROM customers",
		"primary_key": "customer_id", "columns": cols}), &modelChange{})
	inCA := map[string]any{"model": "people", "conditions": map[string]any{"column": "state", "operator": "equals", "value": "CA"}}
	var created struct {
		Audience struct {
			ID string `json:"id"`
		} `json:"audience"`
	}
	structured(t, call(t, c, "create_audience", map[string]any{"name": "people in CA", "definition": inCA}), &created)
	var including struct {
		Audience struct {
			ID string `json:"id"`
		} `json:"audience"`
	}
	structured(t, call(t, c, "create_audience", map[string]any{"name": "people in CA again",
		"definition": map[string]any{"model": "people", "conditions": map[string]any{"in_audience": created.Audience.ID}}}), &including)

	// Renamed, and an impostor under the old name whose every row is in CA.
	structured(t, call(t, c, "update_model", map[string]any{"model": "people", "name": "people_v1"}), &modelChange{})
	structured(t, call(t, c, "create_model", map[string]any{"name": "people", "sql": "SELECT customer_id, 'CA' AS state FROM customers",
		"primary_key": "customer_id", "columns": cols}), &modelChange{})

	cases := []struct {
		name string
		args map[string]any
	}{
		{"the audience itself", map[string]any{"audience": created.Audience.ID}},
		{"an audience that includes it", map[string]any{"audience": including.Audience.ID}},
	}
	for _, tc := range cases {
		var p struct {
			Model string `json:"model"`
			Count int    `json:"count"`
		}
		structured(t, call(t, c, "preview_audience", tc.args), &p)
		if p.Count != ca || p.Model != "people_v1" {
			t.Errorf("%s counts %d over model %s, want %d over the renamed original people_v1", tc.name, p.Count, p.Model, ca)
		}
	}
	// Its size facts are the original's too.
	var check struct {
		Facts map[string]any `json:"facts"`
	}
	structured(t, call(t, c, "check_action", map[string]any{"tool": "update_audience",
		"arguments": map[string]any{"audience": created.Audience.ID, "description": "unchanged"}}), &check)
	if check.Facts["true_size"] != float64(ca) {
		t.Errorf("update_audience facts %v, want true_size %d", check.Facts, ca)
	}
}

func TestNamesThatLookLikeIDsAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	customers, err := e.db.GetModel(ctx, e.ws.ID, "customers")
	if err != nil {
		t.Fatal(err)
	}
	aud := e.audienceNamed(t, "California pro customers")
	// spare is a model nothing refers to, free to be renamed.
	if _, err := e.db.CreateModel(ctx, store.Model{WorkspaceID: e.ws.ID, Name: "spare", Table: "analytics.customers", PrimaryKey: "customer_id",
		Columns: []store.Column{sourced("customer_id", "integer")}}); err != nil {
		t.Fatal(err)
	}
	key, _ := e.key(t, "agent", "member", store.KindAgent, nil)
	c := e.client(t, key)
	table := func(name string) map[string]any {
		return map[string]any{"name": name, "table": "analytics.customers", "primary_key": "customer_id"}
	}
	def := map[string]any{"model": customers.ID, "conditions": map[string]any{"column": "state", "operator": "equals", "value": "CA"}}
	cases := []struct {
		name string
		tool string
		args map[string]any
	}{
		{"create_model named like another model's id", "create_model", table(customers.ID)},
		{"create_model named like a model id in capitals", "create_model", table(strings.ToUpper(customers.ID))},
		{"create_model named like an audience id", "create_model", table("aud_" + strings.TrimPrefix(customers.ID, "mdl_"))},
		{"update_model renaming to an id", "update_model", map[string]any{"model": "spare", "name": customers.ID}},
		{"update_model renaming to a destination id", "update_model", map[string]any{"model": "spare", "name": "dst_1"}},
		{"create_audience named like an audience's id", "create_audience", map[string]any{"name": aud.ID, "definition": def}},
		{"create_audience named like a sync id", "create_audience", map[string]any{"name": "syn_1", "definition": def}},
		{"update_audience renaming to an id", "update_audience", map[string]any{"audience": aud.ID, "name": "apr_1"}},
	}
	for _, tc := range cases {
		res := call(t, c, tc.tool, tc.args)
		if !res.IsError || !strings.Contains(text(res), "looks like an id") {
			t.Errorf("%s: %s, want a refusal saying the name looks like an id", tc.name, text(res))
		}
	}
	// Nothing took an id-like name, and a reference by id still means
	// the model with that id.
	models, err := e.db.ListModels(ctx, e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range models {
		if _, ok := store.LooksLikeID(m.Name); ok {
			t.Errorf("model %s (%s) was saved with an id-like name", m.Name, m.ID)
		}
	}
	if got := e.audienceNamed(t, "California pro customers"); got.Name != aud.Name {
		t.Errorf("audience renamed to %q", got.Name)
	}
	var p struct {
		Model string `json:"model"`
		Count int    `json:"count"`
	}
	structured(t, call(t, c, "preview_audience", map[string]any{"definition": def}), &p)
	if want := e.warehouseCount(t, "SELECT count(*) FROM customers WHERE state = 'CA'"); p.Model != "customers" || p.Count != want {
		t.Errorf("a definition naming %s counts %d over %s, want %d over customers", customers.ID, p.Count, p.Model, want)
	}
}

// sourced is a model column that is a plain reference to the customers
// column of the same name, as the warehouse's lineage gives it.
func sourced(name, typ string) store.Column {
	return store.Column{Name: name, Type: typ, Lineage: store.LineageColumn, Sources: []string{store.SourceColumn("analytics", "customers", name)}}
}
