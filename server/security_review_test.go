package server_test

import (
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// Holes found by a review of the guardrails, tried as an agent with a
// member key would. Each test is one hole, with its variants.

// namePolicies guard two models by the name people know them by, as
// policies are written (README, Guardrails).
const namePolicies = `policies:
  - id: no-orders
    type: deny
    resources: [model]
    operations: [read]
    sources: [AI]
    condition: args.model == "orders"
    message: order rows are not for agents
  - id: customer-audiences-reviewed
    type: require_approval
    resources: [audience]
    operations: [read]
    sources: [AI]
    condition: has(args.definition) && args.definition.model == "customers"
    message: drafts over customers need a human
`

// TestSecurityReviewPolicyByNameHoldsForTheID: a policy that names a model
// decides the same whether the agent names the model or gives its id, in
// a direct call and in check_action.
func TestSecurityReviewPolicyByNameHoldsForTheID(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, namePolicies))
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	ids := map[string]string{}
	for _, name := range []string{"orders", "customers", "events"} {
		m, err := e.db.GetModel(t.Context(), e.ws.ID, name)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = m.ID
	}
	draft := func(model string) map[string]any {
		return map[string]any{"definition": map[string]any{"model": model,
			"conditions": map[string]any{"column": "state", "operator": "equals", "value": "CA"}}}
	}
	for _, tc := range []struct {
		name, tool string
		args       map[string]any
		want       string // the effect check_action names; the call must agree
	}{
		{"preview of orders by name", "preview_model", map[string]any{"model": "orders"}, "deny"},
		{"preview of orders by id", "preview_model", map[string]any{"model": ids["orders"]}, "deny"},
		{"get_model of orders by id", "get_model", map[string]any{"model": ids["orders"]}, "deny"},
		{"a draft over customers by id", "preview_audience", draft(ids["customers"]), "require_approval"},
		{"another model by id", "preview_model", map[string]any{"model": ids["events"], "limit": 3}, "allow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var check struct {
				Effect string `json:"effect"`
			}
			structured(t, call(t, c, "check_action", map[string]any{"tool": tc.tool, "arguments": tc.args}), &check)
			if check.Effect != tc.want {
				t.Errorf("check_action says %q, want %q", check.Effect, tc.want)
			}
			res := call(t, c, tc.tool, tc.args)
			got := "allow"
			switch {
			case res.IsError && strings.Contains(text(res), "Denied by policy"):
				got = "deny"
			case strings.Contains(text(res), "needs a human's approval"):
				got = "require_approval"
			case res.IsError:
				got = "error: " + text(res)
			}
			if got != tc.want {
				t.Errorf("the call got %q (%.200s), want %q", got, text(res), tc.want)
			}
		})
	}
}
