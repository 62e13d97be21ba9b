package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// The size guardrail must see a write's whole effect, counted as it is:
// the audiences built on what the write changes, and the true size, not
// the part of it the caller's access filters let it see.

// defaultsWithThreshold are the shipped policies with the large-audience
// threshold lowered to n, so the small test warehouse can cross it.
func defaultsWithThreshold(t *testing.T, n int) string {
	t.Helper()
	src := string(guardrails.DefaultPolicySource())
	const rule = "facts.estimated_size > 100000"
	if !strings.Contains(src, rule) {
		t.Fatalf("the default policies no longer have %q", rule)
	}
	return strings.ReplaceAll(src, rule, fmt.Sprintf("facts.estimated_size > %d", n))
}

// saveAudience saves an audience over model as a person would, straight
// in the store, and returns it.
func (e *env) saveAudience(t *testing.T, name, model string, conditions any) store.Audience {
	t.Helper()
	ctx := context.Background()
	m, err := e.db.GetModel(ctx, e.ws.ID, model)
	if err != nil {
		t.Fatal(err)
	}
	def, err := json.Marshal(map[string]any{"model": m.Name, "conditions": conditions})
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.db.CreateAudience(ctx, store.Audience{WorkspaceID: e.ws.ID, Name: name, ModelID: m.ID, Definition: def})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// syncToSandbox has a person set up a sync of the audience to the demo's
// sandbox destination.
func (e *env) syncToSandbox(t *testing.T, a store.Audience) {
	t.Helper()
	ctx := context.Background()
	dsts, err := e.db.ListDestinations(ctx, e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dsts {
		if d.Environment == "sandbox" {
			if _, err := e.db.CreateSync(ctx, store.Sync{WorkspaceID: e.ws.ID, AudienceID: a.ID, DestinationID: d.ID, Mode: "mirror", Schedule: "@daily"}); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("the demo has no sandbox destination")
}

// queuedApproval returns the approval a call was queued as, failing the
// test when the call was not queued.
func (e *env) queuedApproval(t *testing.T, res *mcp.CallToolResult) store.Approval {
	t.Helper()
	var q struct {
		ApprovalID string `json:"approval_id"`
	}
	structured(t, res, &q)
	if q.ApprovalID == "" {
		t.Fatalf("the call ran instead of waiting for a human: %s", text(res))
	}
	a, err := e.db.GetApproval(context.Background(), e.ws.ID, q.ApprovalID)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// dependent is one entry of the dependents fact.
type dependent struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	SizeBefore int64  `json:"size_before"`
	SizeAfter  int64  `json:"size_after"`
	Synced     bool   `json:"synced"`
}

// dependentFact returns the dependents fact's entry for the audience id.
func dependentFact(t *testing.T, facts map[string]any, id string) dependent {
	t.Helper()
	b, err := json.Marshal(facts["dependents"])
	if err != nil {
		t.Fatal(err)
	}
	var deps []dependent
	if err := json.Unmarshal(b, &deps); err != nil {
		t.Fatalf("dependents fact %s: %v", b, err)
	}
	for _, d := range deps {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("audience %s is not among the dependents %s", id, b)
	return dependent{}
}

func TestBlastRadiusSendsDependentChangesToAHuman(t *testing.T) {
	t.Parallel()
	repeatBuyers := map[string]any{"relationship": "orders", "aggregate": "count", "operator": "greater_or_equal", "value": 3}
	cases := []struct {
		name string
		// arrange saves what the write would affect, as a person would, and
		// returns the audience whose size the write changes.
		arrange func(t *testing.T, e *env) store.Audience
		tool    string
		// target names the audience update_audience changes.
		target string
		args   map[string]any
		rule   string
		// unchanged reports whether the write's target is as it was.
		unchanged func(t *testing.T, e *env) bool
	}{
		{
			name: "model widened under a synced audience, through a relationship",
			arrange: func(t *testing.T, e *env) store.Audience {
				a := e.saveAudience(t, "repeat buyers", "customers", repeatBuyers)
				e.syncToSandbox(t, a)
				return a
			},
			tool: "update_model",
			// Every order counted once per order of its customer.
			args: map[string]any{"model": "orders", "sql": "SELECT o.* FROM orders o JOIN orders o2 ON o2.customer_id = o.customer_id"},
			rule: "ai-synced-audience-change",
			unchanged: func(t *testing.T, e *env) bool {
				m, err := e.db.GetModel(context.Background(), e.ws.ID, "orders")
				return err == nil && m.Table == "analytics.orders" && m.SQL == ""
			},
		},
		{
			name: "relationship retargeted under a synced audience",
			arrange: func(t *testing.T, e *env) store.Audience {
				a := e.saveAudience(t, "repeat buyers", "customers", repeatBuyers)
				e.syncToSandbox(t, a)
				return a
			},
			tool: "update_model",
			// "orders" now counts events, which every customer has more of.
			args: map[string]any{"model": "customers", "relationships": []map[string]any{
				{"name": "orders", "model": "events", "foreign_key": "customer_id", "references": "customer_id"},
				{"name": "events", "model": "events", "foreign_key": "customer_id", "references": "customer_id"},
			}},
			rule: "ai-synced-audience-change",
			unchanged: func(t *testing.T, e *env) bool {
				m, err := e.db.GetModel(context.Background(), e.ws.ID, "customers")
				return err == nil && len(m.Relationships) == 2 && m.Relationships[0].Model == "orders"
			},
		},
		{
			name: "audience widened under the synced audience that includes it",
			arrange: func(t *testing.T, e *env) store.Audience {
				ca := e.saveAudience(t, "in CA", "customers", map[string]any{"column": "state", "operator": "equals", "value": "CA"})
				synced := e.saveAudience(t, "CA pro", "customers", map[string]any{"all": []any{
					map[string]any{"in_audience": ca.ID},
					map[string]any{"column": "plan", "operator": "equals", "value": "pro"},
				}})
				e.syncToSandbox(t, synced)
				return synced
			},
			tool:   "update_audience",
			target: "in CA",
			args: map[string]any{"definition": map[string]any{"model": "customers",
				"conditions": map[string]any{"column": "state", "operator": "in", "value": []any{"CA", "NY", "TX", "WA"}}}},
			rule: "ai-synced-audience-change",
			unchanged: func(t *testing.T, e *env) bool {
				a := e.audienceNamed(t, "in CA")
				return a.Version == 1
			},
		},
		{
			name: "excluded audience shrunk, so the audience that excludes it grows",
			arrange: func(t *testing.T, e *env) store.Audience {
				emea := e.saveAudience(t, "EMEA", "customers", map[string]any{"column": "region", "operator": "equals", "value": "EMEA"})
				return e.saveAudience(t, "outside EMEA", "customers", map[string]any{"not_in_audience": emea.ID})
			},
			tool:   "update_audience",
			target: "EMEA",
			args: map[string]any{"definition": map[string]any{"model": "customers",
				"conditions": map[string]any{"all": []any{
					map[string]any{"column": "region", "operator": "equals", "value": "EMEA"},
					map[string]any{"column": "plan", "operator": "equals", "value": "enterprise"},
				}}}},
			rule: "ai-dependent-audience-change",
			unchanged: func(t *testing.T, e *env) bool {
				return e.audienceNamed(t, "EMEA").Version == 1
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			dep := tc.arrange(t, e)
			key, _ := e.key(t, "agent", "member", store.KindAgent, nil)
			c := e.client(t, key)
			args := tc.args
			if tc.target != "" {
				args["audience"] = e.audienceNamed(t, tc.target).ID
			}
			a := e.queuedApproval(t, call(t, c, tc.tool, args))
			if !slices.Contains(a.Rules, tc.rule) {
				t.Errorf("rules %v, want %s among them", a.Rules, tc.rule)
			}
			d := dependentFact(t, a.Facts, dep.ID)
			if d.SizeAfter <= d.SizeBefore {
				t.Errorf("dependent %s: size %d -> %d, want the write to grow it", dep.Name, d.SizeBefore, d.SizeAfter)
			}
			if n, _ := a.Facts["dependents_changed"].(float64); n < 1 {
				t.Errorf("dependents_changed = %v, want at least 1", a.Facts["dependents_changed"])
			}
			if !tc.unchanged(t, e) {
				t.Error("the write ran before a human approved it")
			}
			// Once a person approves, the change runs as reviewed.
			adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
			status, out := api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+a.ID+"/approve", adminKey, `{}`)
			if status != http.StatusOK || out["state"] != store.ApprovalSucceeded || tc.unchanged(t, e) {
				t.Errorf("approve: %d %v, want the change made", status, out)
			}
		})
	}
}

func TestBlastRadiusCountsABoundedNumberOfDependents(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ca := e.saveAudience(t, "in CA", "customers", map[string]any{"column": "state", "operator": "equals", "value": "CA"})
	// More audiences include it than one call counts.
	const includers = 21
	for i := range includers {
		e.saveAudience(t, fmt.Sprintf("in CA %d", i), "customers", map[string]any{"in_audience": ca.ID})
	}
	key, _ := e.key(t, "agent", "member", store.KindAgent, nil)
	c := e.client(t, key)
	// A new definition with the same members: every count stays the same.
	same := map[string]any{"model": "customers", "conditions": map[string]any{"column": "state", "operator": "in", "value": []any{"CA", "no such state"}}}
	a := e.queuedApproval(t, call(t, c, "update_audience", map[string]any{"audience": ca.ID, "definition": same}))
	if !slices.Contains(a.Rules, "ai-dependent-audience-change") || a.Facts["dependents_changed"] != float64(includers) ||
		a.Facts["dependents_uncounted"].(float64) < 1 || a.Facts["max_dependent_change"] != 0.0 {
		t.Errorf("rules %v, facts %v: want ai-dependent-audience-change for the dependents left uncounted", a.Rules, a.Facts)
	}
	if e.audienceNamed(t, "in CA").Version != 1 {
		t.Error("the write ran before a human approved it")
	}
}

// audienceNamed returns the saved audience with this name.
func (e *env) audienceNamed(t *testing.T, name string) store.Audience {
	t.Helper()
	list, err := e.db.ListAudiences(context.Background(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no audience named %q", name)
	return store.Audience{}
}

func TestAccessFiltersDoNotShrinkTheMeasuredSize(t *testing.T) {
	t.Parallel()
	e0 := setup(t)
	total := e0.warehouseCount(t, "SELECT count(*) FROM customers")
	emea := e0.warehouseCount(t, "SELECT count(*) FROM customers WHERE region = 'EMEA'")
	if emea == 0 || emea*2 >= total {
		t.Fatalf("the test warehouse has %d EMEA customers of %d: the threshold below needs fewer", emea, total)
	}
	// Between what an EMEA member sees of everyone and everyone.
	threshold := (emea + total) / 2
	everyone := map[string]any{"model": "customers", "conditions": map[string]any{"all": []any{}}}
	onlyEMEA := map[string]any{"model": "customers", "conditions": map[string]any{"column": "region", "operator": "equals", "value": "EMEA"}}
	onlyPro := map[string]any{"model": "customers", "conditions": map[string]any{"column": "plan", "operator": "equals", "value": "pro"}}
	pro := e0.warehouseCount(t, "SELECT count(*) FROM customers WHERE plan = 'pro'")
	emeaPro := e0.warehouseCount(t, "SELECT count(*) FROM customers WHERE plan = 'pro' AND region = 'EMEA'")
	if pro >= threshold || emeaPro == pro {
		t.Fatalf("%d pro customers (%d in EMEA) for a threshold of %d: the pro case needs fewer, not all in EMEA", pro, emeaPro, threshold)
	}
	cases := []struct {
		name       string
		filtered   bool
		definition map[string]any
		queued     bool
		size, seen int
	}{
		{"all customers by an EMEA member", true, everyone, true, total, emea},
		{"all customers by an unfiltered member", false, everyone, true, total, total},
		{"EMEA customers by an EMEA member", true, onlyEMEA, false, emea, emea},
		// Created, and told only the size it can see.
		{"pro customers by an EMEA member", true, onlyPro, false, pro, emeaPro},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, withPolicies(t, defaultsWithThreshold(t, threshold)))
			key, _ := e.key(t, "agent", "member", store.KindAgent, nil)
			if tc.filtered {
				key, _ = e.filteredAgent(t, "emea-agent")
			}
			c := e.client(t, key)
			args := map[string]any{"name": fmt.Sprintf("audience %d", i), "definition": tc.definition}

			// The dry run decides on the true size; it shows the agent the
			// size it can see, and the true size only when that is all.
			var check struct {
				Effect string         `json:"effect"`
				Facts  map[string]any `json:"facts"`
			}
			structured(t, call(t, c, "check_action", map[string]any{"tool": "create_audience", "arguments": args}), &check)
			if check.Facts["visible_size"] != float64(tc.seen) {
				t.Errorf("check_action facts %v, want visible_size %d", check.Facts, tc.seen)
			}
			if tc.filtered {
				if _, shown := check.Facts["true_size"]; shown || check.Facts["estimated_size"] != nil || check.Facts["hidden_facts"] == nil {
					t.Errorf("check_action facts %v: a filtered caller must not read sizes counted beyond its filters", check.Facts)
				}
			} else if check.Facts["true_size"] != float64(tc.size) || check.Facts["estimated_size"] != float64(tc.size) {
				t.Errorf("check_action facts %v, want true_size = estimated_size = %d", check.Facts, tc.size)
			}

			res := call(t, c, "create_audience", args)
			if !tc.queued {
				var out struct {
					Audience struct {
						ID string `json:"id"`
					} `json:"audience"`
					Size int `json:"estimated_size"`
				}
				structured(t, res, &out)
				if out.Audience.ID == "" || out.Size != tc.seen || check.Effect != guardrails.EffectAllow {
					t.Errorf("create_audience = %s (check said %s), want it created with %d visible members", text(res), check.Effect, tc.seen)
				}
				return
			}
			a := e.queuedApproval(t, res)
			if a.Rules[0] != "ai-large-audience" || check.Effect != guardrails.EffectRequireApproval {
				t.Errorf("rules %v (check said %s), want ai-large-audience", a.Rules, check.Effect)
			}
			if a.Facts["estimated_size"] != float64(tc.size) || a.Facts["true_size"] != float64(tc.size) || a.Facts["visible_size"] != float64(tc.seen) {
				t.Errorf("approval facts %v, want true_size = estimated_size = %d and visible_size %d for the reviewer", a.Facts, tc.size, tc.seen)
			}
		})
	}
}

func TestOrdinaryAgentWorkRunsDirectly(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := e.saveAudience(t, "in NY", "customers", map[string]any{"column": "state", "operator": "equals", "value": "NY"})
	key, _ := e.key(t, "agent", "member", store.KindAgent, nil)
	c := e.client(t, key)
	small := map[string]any{"model": "customers", "conditions": map[string]any{"column": "state", "operator": "equals", "value": "CA"}}
	cases := []struct {
		name string
		tool string
		args map[string]any
		// want is text the result must contain.
		want string
	}{
		{"list models", "list_models", map[string]any{}, "customers"},
		{"preview masked data", "preview_model", map[string]any{"model": "customers", "limit": 3}, `"email":"***"`},
		{"create a small audience", "create_audience", map[string]any{"name": "CA", "definition": small}, "Created audience CA"},
		{"change an audience nothing depends on", "update_audience", map[string]any{"audience": a.ID,
			"definition": map[string]any{"model": "customers", "conditions": map[string]any{"column": "state", "operator": "in", "value": []any{"NY", "NJ"}}}}, "version 2"},
		{"create a safe SQL model", "create_model", map[string]any{"name": "pro_customers", "sql": "SELECT customer_id, plan FROM customers WHERE plan = 'pro'",
			"primary_key": "customer_id", "columns": []map[string]any{{"name": "customer_id", "pii": "none"}, {"name": "plan", "pii": "none"}}}, "Created model pro_customers"},
		{"describe a model audiences use", "update_model", map[string]any{"model": "customers", "description": "Every customer."}, "Updated model customers"},
	}
	for _, tc := range cases {
		res := call(t, c, tc.tool, tc.args)
		if res.IsError || !strings.Contains(text(res), tc.want) || strings.Contains(text(res), "approval") {
			t.Errorf("%s: %s, want it to run directly and say %q", tc.name, text(res), tc.want)
		}
	}
	// Deletes still wait for a human.
	if q := e.queuedApproval(t, call(t, c, "delete_audience", map[string]any{"audience": a.ID})); q.Rules[0] != "ai-delete" {
		t.Errorf("delete_audience queued by %v, want ai-delete", q.Rules)
	}
}
