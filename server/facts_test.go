package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/tools"
)

// factPolicies send audience creations over 10 people and audience
// updates that change another audience to a human: conditions on typed
// facts, a dependent's fields included.
const factPolicies = `policies:
  - id: big-audience
    type: require_approval
    resources: [audience]
    operations: [create]
    sources: [AI]
    condition: facts.estimated_size > 10 && facts.model == "customers"
    message: the audience holds more than 10 people
  - id: changes-dependents
    type: require_approval
    resources: [audience]
    operations: [update]
    sources: [AI]
    condition: facts.dependents.exists(d, d.size_after != d.size_before)
    message: the change alters an audience built on this one
`

// inCA and inCAorNY are audience definitions over customers.
var (
	inCA     = map[string]any{"model": "customers", "conditions": map[string]any{"column": "state", "operator": "equals", "value": "CA"}}
	inCAorNY = map[string]any{"model": "customers", "conditions": map[string]any{"column": "state", "operator": "in", "value": []any{"CA", "NY"}}}
)

// factArgs are valid arguments of every tool that computes facts, over an
// audience base that another audience includes and the demo's sync.
func factArgs(base store.Audience, syncID string) map[string]map[string]any {
	one := map[string]any{"sync": syncID}
	return map[string]map[string]any{
		"create_audience": {"name": "facts new", "definition": inCA},
		"update_audience": {"audience": base.ID, "definition": inCAorNY},
		"update_model":    {"model": "customers", "description": "Customers, described again."},
		"create_sync": {"audience": base.ID, "destination": "Sandbox file export", "mode": "upsert",
			"mappings": []any{map[string]any{"from": "email", "to": "email"}}},
		"update_sync":  {"sync": syncID, "schedule": "2h"},
		"pause_sync":   one,
		"resume_sync":  one,
		"delete_sync":  one,
		"trigger_sync": one,
	}
}

// ownedSync is a sync of the audience to the demo's sandbox destination
// that a person owns, so it can run.
func (e *env) ownedSync(t *testing.T, a store.Audience) string {
	t.Helper()
	_, k := e.key(t, "sync-owner", "owner", store.KindUser, nil)
	dsts, err := e.db.ListDestinations(t.Context(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dsts {
		if d.Environment == "sandbox" {
			s, err := e.db.CreateSync(t.Context(), store.Sync{WorkspaceID: e.ws.ID, AudienceID: a.ID, DestinationID: d.ID,
				Mode: "upsert", OwnerID: k.MemberID, Mappings: []store.FieldMapping{{From: "email", To: "email"}}})
			if err != nil {
				t.Fatal(err)
			}
			return s.ID
		}
	}
	t.Fatal("the demo has no sandbox destination")
	return ""
}

// withDependent saves an audience in California and one that includes it,
// and returns the first.
func (e *env) withDependent(t *testing.T) store.Audience {
	t.Helper()
	base := e.saveAudience(t, "facts base", "customers", inCA["conditions"])
	e.saveAudience(t, "facts includer", "customers", map[string]any{"in_audience": base.ID})
	return base
}

// TestToolFactsMatchDeclarations: what every tool computes, for a caller
// with access filters and one without, is exactly what it declares, each
// of its declared type; a filtered caller is told which facts it does not
// see, and they are the unfiltered ones.
func TestToolFactsMatchDeclarations(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	base := e.withDependent(t)
	cases := factArgs(base, e.ownedSync(t, base))
	declared := map[string][]string{}
	for _, tool := range tools.All(tools.Deps{}) {
		if len(tool.FactNames) > 0 {
			declared[tool.Spec.Name] = tool.FactNames
		}
	}
	if got, want := slices.Sorted(maps.Keys(declared)), slices.Sorted(maps.Keys(cases)); !slices.Equal(got, want) {
		t.Fatalf("tools computing facts %v, cases for %v: give the new tool a case", got, want)
	}
	plain, _ := e.key(t, "facts-agent", "member", store.KindAgent, nil)
	filtered, _ := e.filteredAgent(t, "facts-emea-agent")
	for _, caller := range []struct {
		name     string
		key      string
		filtered bool
	}{{"unfiltered", plain, false}, {"filtered", filtered, true}} {
		c := e.client(t, caller.key)
		for _, tool := range slices.Sorted(maps.Keys(cases)) {
			t.Run(caller.name+"/"+tool, func(t *testing.T) {
				var check tools.Check
				structured(t, call(t, c, "check_action", map[string]any{"tool": tool, "arguments": cases[tool]}), &check)
				if check.Effect != guardrails.EffectAllow {
					t.Fatalf("check_action: %s (%s)", check.Effect, check.Reason)
				}
				var hidden []string
				if h, ok := check.Facts["hidden_facts"].([]any); ok {
					for _, n := range h {
						hidden = append(hidden, n.(string))
					}
				}
				facts := maps.Clone(check.Facts)
				delete(facts, "hidden_facts")
				if err := guardrails.CheckFacts(declared[tool], facts); err != nil {
					t.Errorf("facts %v: %v", facts, err)
				}
				got := slices.Sorted(slices.Values(append(slices.Collect(maps.Keys(facts)), hidden...)))
				if want := slices.Sorted(slices.Values(declared[tool])); !slices.Equal(got, want) {
					t.Errorf("facts %v, want exactly %v", got, want)
				}
				var wantHidden []string
				for _, n := range declared[tool] {
					if f, _ := guardrails.LookupFact(n); f.Unfiltered && caller.filtered {
						wantHidden = append(wantHidden, n)
					}
				}
				if slices.Sort(hidden); !slices.Equal(hidden, slices.Sorted(slices.Values(wantHidden))) {
					t.Errorf("hidden facts %v, want %v", hidden, wantHidden)
				}
			})
		}
	}
}

// TestDecisionsRecordTheirFacts: the audit event of every decision a tool
// computed facts for carries them under args.$facts, typed, without a
// customer value; a decision made again on them comes out the same; a
// caller cannot put facts of its own in the record; and the chain still
// verifies.
func TestDecisionsRecordTheirFacts(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, factPolicies))
	ctx := context.Background()
	base := e.withDependent(t)
	key, k := e.key(t, "facts-agent", "member", store.KindAgent, nil)
	c := e.client(t, key)
	inCount := e.warehouseCount(t, "SELECT count(*) FROM customers WHERE state = 'CA'")
	if inCount <= 10 {
		t.Fatalf("%d customers in CA: the test needs more than 10", inCount)
	}
	small := map[string]any{"model": "customers", "conditions": map[string]any{"column": "customer_id", "operator": "equals", "value": 1}}

	cases := []struct {
		name     string
		tool     string
		args     map[string]any
		decision string
		rules    []string
		size     int
	}{
		{"allowed", "create_audience", map[string]any{"name": "one customer", "definition": small}, store.DecisionExecuted, nil, 1},
		{"queued", "create_audience", map[string]any{"name": "californians", "definition": inCA}, store.DecisionApprovalRequired, []string{"big-audience"}, inCount},
		{"queued with dependents", "update_audience", map[string]any{"audience": base.ID, "definition": inCAorNY}, store.DecisionApprovalRequired, []string{"changes-dependents"}, -1},
	}
	policies, err := guardrails.ParsePolicies("test.yaml", []byte(factPolicies))
	if err != nil {
		t.Fatal(err)
	}
	engine := guardrails.NewEngine(policies, e.db)
	p, err := e.db.Principal(ctx, k.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]tools.Tool{}
	for _, tool := range tools.All(tools.Deps{}) {
		byName[tool.Spec.Name] = tool
	}
	var queued []string
	for _, tc := range cases {
		res := call(t, c, tc.tool, tc.args)
		ev := e.lastAudit(t)
		if ev.Tool != tc.tool || ev.Decision != tc.decision || !slices.Equal(ev.Rules, tc.rules) {
			t.Fatalf("%s: event %s %s %v (%s), want %s %v; result %s", tc.name, ev.Tool, ev.Decision, ev.Rules, ev.Reason, tc.decision, tc.rules, text(res))
		}
		if ev.ApprovalID != "" {
			queued = append(queued, ev.ApprovalID)
		}
		facts := recordedFacts(t, ev)
		if err := guardrails.CheckFacts(byName[tc.tool].FactNames, facts); err != nil || len(facts) != len(byName[tc.tool].FactNames) {
			t.Errorf("%s: recorded facts %v (%v), want the %d the tool declares", tc.name, facts, err, len(byName[tc.tool].FactNames))
		}
		if tc.size >= 0 && facts["estimated_size"] != json.Number(fmt.Sprint(tc.size)) {
			t.Errorf("%s: recorded estimated_size %v, want %d", tc.name, facts["estimated_size"], tc.size)
		}
		if b, _ := json.Marshal(facts); strings.Contains(string(b), "@example.") || strings.Contains(string(b), `"CA"`) {
			t.Errorf("%s: recorded facts carry a customer value: %s", tc.name, b)
		}
		// Replay: the same decision on the recorded facts.
		tool := byName[tc.tool]
		var args map[string]any
		for k, v := range ev.Args {
			if k != store.AuditFactsArg {
				if args == nil {
					args = map[string]any{}
				}
				args[k] = v
			}
		}
		d, err := engine.DryRun(ctx, guardrails.Input{Principal: p, Source: ev.Source, Tool: ev.Tool, Resource: tool.Resource, Operation: tool.Operation(), Args: args, Facts: facts})
		if err != nil || !slices.Equal(d.Rules, tc.rules) {
			t.Errorf("%s: replayed on the recorded facts: %s %v %v, want rules %v", tc.name, d.Effect, d.Rules, err, tc.rules)
		}
	}
	if got := e.approval(t, queued[1]); got.Facts["dependents"] == nil {
		t.Errorf("the update's approval has no dependents: %v", got.Facts)
	}

	// The approved run records the facts it was decided on again.
	_, adminKey := e.key(t, "facts-admin", "admin", store.KindUser, nil)
	admin, err := e.db.Principal(ctx, adminKey.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := approvals.NewQueue(e.db, e.rbac, 0).Decide(ctx, admin, store.SourceUI, queued[0], true, "ok")
	if err != nil {
		t.Fatal(err)
	}
	if a, err = e.srv.Gate().Execute(ctx, a, store.SourceUI); err != nil || a.State != store.ApprovalSucceeded {
		t.Fatalf("approved run: %s %v (%s)", a.State, err, a.Outcome)
	}
	ev := e.lastAudit(t)
	if ev.ApprovalID != queued[0] || ev.Decision != store.DecisionExecuted || recordedFacts(t, ev)["estimated_size"] != json.Number(fmt.Sprint(inCount)) {
		t.Errorf("approved run's event %s %s args %v", ev.ApprovalID, ev.Decision, ev.Args)
	}

	// Reads compute no facts and record none; facts a caller sends are
	// refused and never recorded as the gate's.
	call(t, c, "get_model", map[string]any{"model": "customers"})
	if ev := e.lastAudit(t); ev.Args[store.AuditFactsArg] != nil {
		t.Errorf("get_model recorded facts: %v", ev.Args)
	}
	for _, tool := range []string{"create_audience", "get_model"} {
		res := call(t, c, tool, map[string]any{"name": "forged", "model": "customers", "definition": small, store.AuditFactsArg: map[string]any{"estimated_size": 1}})
		ev := e.lastAudit(t)
		if !res.IsError || ev.Args[store.AuditFactsArg] != nil || ev.Decision != store.DecisionFailed {
			t.Errorf("%s with a $facts argument: %s, recorded %s %v", tool, text(res), ev.Decision, ev.Args)
		}
	}
	rep, err := e.db.VerifyAudit(ctx)
	if err != nil || rep.Break != nil {
		t.Fatalf("audit chain: %+v %v", rep.Break, err)
	}
}

// recordedFacts returns the facts an audit event recorded.
func recordedFacts(t *testing.T, ev store.AuditEvent) map[string]any {
	t.Helper()
	facts, ok := ev.Args[store.AuditFactsArg].(map[string]any)
	if !ok {
		t.Fatalf("event %s of %s records no facts: %v", ev.ID, ev.Tool, ev.Args)
	}
	return facts
}

// TestSearchAuditHidesUnfilteredFactsFromFilteredReaders: an admin with
// access filters reads the recorded facts of every call without the sizes
// counted beyond its filters; one without filters reads them all.
func TestSearchAuditHidesUnfilteredFactsFromFilteredReaders(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	ctx := context.Background()
	agent, _ := e.key(t, "facts-agent", "member", store.KindAgent, nil)
	call(t, e.client(t, agent), "create_audience", map[string]any{"name": "californians", "definition": inCA})
	plain, _ := e.key(t, "plain-admin", "admin", store.KindUser, nil)
	filtered, fk := e.key(t, "emea-admin", "admin", store.KindUser, nil)
	if _, err := e.db.PutAccessFilter(ctx, store.AccessFilter{WorkspaceID: e.ws.ID, Group: "emea-admins",
		Table: "analytics.customers", Column: "region", Operator: store.FilterEquals, Value: "EMEA"}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.AddToGroup(ctx, e.ws.ID, fk.MemberID, "emea-admins"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		key      string
		filtered bool
	}{{"unfiltered", plain, false}, {"filtered", filtered, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var out struct {
				Events []store.AuditEvent `json:"events"`
			}
			structured(t, call(t, e.client(t, tc.key), "search_audit", map[string]any{"tool": "create_audience"}), &out)
			if len(out.Events) != 1 {
				t.Fatalf("%d events", len(out.Events))
			}
			facts, _ := out.Events[0].Args[store.AuditFactsArg].(map[string]any)
			_, sized := facts["true_size"]
			if facts["visible_size"] == nil || sized == tc.filtered || (facts["hidden_facts"] != nil) != tc.filtered {
				t.Errorf("recorded facts read back %v", facts)
			}
		})
	}
}

// TestApprovalPageShowsFactsByTheirLabels: the reviewer reads every fact
// under the label of its declaration, counts as numbers and the audiences
// a change alters as a table, not raw fact names.
func TestApprovalPageShowsFactsByTheirLabels(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, factPolicies))
	base := e.withDependent(t)
	agent, _ := e.key(t, "facts-agent", "member", store.KindAgent, nil)
	c := e.client(t, agent)
	created := e.queuedApproval(t, call(t, c, "create_audience", map[string]any{"name": "californians", "definition": inCA}))
	updated := e.queuedApproval(t, call(t, c, "update_audience", map[string]any{"audience": base.ID, "definition": inCAorNY}))
	inCount := e.warehouseCount(t, "SELECT count(*) FROM customers WHERE state = 'CA'")
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
	w := newWeb(t, e.http.URL, nil)
	w.signIn(adminKey)
	cases := []struct {
		name string
		id   string
		want []string
	}{
		{"create", created.ID, []string{fmt.Sprintf("<dt>Estimated size</dt><dd>%d</dd>", inCount), "<dt>Size the caller sees</dt>",
			"<dt>Model</dt><dd>customers</dd>", "<dt>Caller has access filters</dt><dd>no</dd>"}},
		{"update", updated.ID, []string{"<dt>Size change</dt>", "<dt>Dependent audiences changed</dt><dd>1</dd>",
			"Saved audiences the call changes", "<td>facts includer</td>", "<dt>Largest change of a dependent audience (%)</dt>"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, body := w.get("/approvals/" + tc.id)
			for _, want := range tc.want {
				if !strings.Contains(body, want) {
					t.Errorf("detail page lacks %s", want)
				}
			}
			for _, raw := range []string{"Other facts", "estimated_size", "dependents_changed", "caller_filtered"} {
				if strings.Contains(body, raw) {
					t.Errorf("detail page shows %s", raw)
				}
			}
			if t.Failed() {
				t.Logf("page:\n%s", body)
			}
		})
	}
}
