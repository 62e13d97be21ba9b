package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/tools"
)

// aiEffect is what the default policies do with each tool called by an AI
// agent whose role permits it (DESIGN.md section 6), written out by hand.
// Other sources get "allow": the defaults only govern AI.
var aiEffect = map[string]string{
	"list_tables": "allow", "describe_table": "allow",
	"list_models": "allow", "get_model": "allow", "preview_model": "allow",
	"create_model": "allow", "update_model": "allow", "delete_model": "require_approval",
	"list_audiences": "allow", "get_audience": "allow", "preview_audience": "allow",
	"create_audience": "allow", "update_audience": "allow", "delete_audience": "require_approval",
	"list_destinations": "allow", "get_destination": "allow",
	"list_syncs": "allow", "get_sync": "allow",
	// To a sandbox (the facts below): a human is needed for production.
	"create_sync": "allow", "update_sync": "allow", "pause_sync": "allow", "resume_sync": "allow",
	"delete_sync": "require_approval", "trigger_sync": "allow", "get_sync_run": "allow", "list_sync_runs": "allow",
	"list_approvals": "allow", "get_approval": "allow", "cancel_approval": "allow",
	"check_action": "allow", "search_audit": "allow",
}

// roleHas is DESIGN.md section 5 for the permissions tools need, by role,
// written out by hand ("" is any caller).
var roleHas = map[string]map[string]bool{
	"owner":  {"audit.read": true, "": true, "sources.read": true, "models.read": true, "models.create": true, "models.update": true, "models.delete": true, "audiences.read": true, "audiences.create": true, "audiences.update": true, "audiences.delete": true, "destinations.read": true, "syncs.read": true, "syncs.create": true, "syncs.update": true, "syncs.delete": true, "syncs.trigger": true, "approvals.read": true},
	"admin":  {"audit.read": true, "": true, "sources.read": true, "models.read": true, "models.create": true, "models.update": true, "models.delete": true, "audiences.read": true, "audiences.create": true, "audiences.update": true, "audiences.delete": true, "destinations.read": true, "syncs.read": true, "syncs.create": true, "syncs.update": true, "syncs.delete": true, "syncs.trigger": true, "approvals.read": true},
	"member": {"": true, "sources.read": true, "models.read": true, "models.create": true, "models.update": true, "models.delete": true, "audiences.read": true, "audiences.create": true, "audiences.update": true, "audiences.delete": true, "destinations.read": true, "syncs.read": true, "syncs.create": true, "syncs.update": true, "syncs.delete": true, "syncs.trigger": true, "approvals.read": true},
}

// TestDecisionMatrix runs every tool against every built-in role and every
// source with the default policies and checks RBAC and the guardrail
// effect against the tables above: the executable form of DESIGN.md
// sections 5 and 6 for the tools that exist.
func TestDecisionMatrix(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	set, err := guardrails.DefaultPolicies()
	if err != nil {
		t.Fatal(err)
	}
	engine := guardrails.NewEngine(set, e.db)
	all := tools.All(tools.Deps{})
	if len(all) != len(aiEffect) {
		t.Errorf("%d tools, %d in the matrix: add the new tools to it", len(all), len(aiEffect))
	}
	for _, role := range []string{"owner", "admin", "member"} {
		_, k := e.key(t, "matrix-"+role, role, store.KindAgent, nil)
		p, err := e.db.Principal(ctx, k.ID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range all {
			name := tool.Spec.Name
			want, ok := aiEffect[name]
			if !ok {
				t.Errorf("tool %s is not in the matrix", name)
				continue
			}
			allowed := true
			if tool.Permission != "" {
				acc, err := e.rbac.Authorize(ctx, p, tool.Permission)
				if err != nil {
					t.Fatal(err)
				}
				allowed = acc.Allowed
			}
			if allowed != roleHas[role][tool.Permission] {
				t.Errorf("%s %s: RBAC allowed=%v, want %v", role, name, allowed, roleHas[role][tool.Permission])
			}
			for _, source := range []string{store.SourceAI, store.SourceAPI, store.SourceUI, store.SourceSystem} {
				in := guardrails.Input{Principal: p, Source: source, Tool: name, Resource: tool.Resource, Operation: tool.Operation(),
					Facts: map[string]any{"estimated_size": 10, "destination_environment": "sandbox",
						// An update's blast radius: nothing else changes.
						"synced_audiences_changed": 0, "dependents_uncounted": 0, "max_dependent_change": 0,
						"max_dependent_change_pct": 0.0, "max_dependent_size": 0}}
				d, err := engine.DryRun(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				w := want
				if source != store.SourceAI {
					w = guardrails.EffectAllow
				}
				if d.Effect != w {
					t.Errorf("%s %s from %s: %s (%s), want %s", role, name, source, d.Effect, d.Reason, w)
				}
			}
		}
	}
}
