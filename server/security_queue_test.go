package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/signalsmith/agent-server/store"
)

// A call that cannot run is refused at once with the reason, never queued
// for a human whose approval could only end in a failure.

// queuePolicies send every deletion and every audience update to a human,
// and count AI writes.
const queuePolicies = `policies:
  - id: ai-delete
    type: require_approval
    resources: ["*"]
    operations: [delete]
    sources: [AI]
    message: deletions by an AI agent need a human's approval
  - id: ai-audience-update
    type: require_approval
    resources: [audience]
    operations: [update]
    sources: [AI]
    message: audience changes need a human's approval
  - id: ai-write-rate
    type: rate_limit
    resources: ["*"]
    operations: [create, update, delete]
    sources: [AI]
    limit: 30
    window: 1h
    scope: key
    message: at most 30 AI writes an hour
`

// rateLimitUses counts the uses the rate limits have recorded.
func (e *env) rateLimitUses(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.raw.QueryRow("SELECT count(*) FROM rate_limit_uses").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// audienceID returns the id of the seeded audience with this name.
func (e *env) audienceID(t *testing.T, name string) string {
	t.Helper()
	list, err := e.db.ListAudiences(context.Background(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if a.Name == name {
			return a.ID
		}
	}
	t.Fatalf("no audience %q", name)
	return ""
}

func TestCallsThatCannotRunAreNotQueued(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		tool string
		// args returns the call's arguments, after any setup the agent c
		// does first.
		args func(t *testing.T, e *env, c *client.Client) map[string]any
		want []string
	}{
		{"delete of an unknown model", "delete_model", func(*testing.T, *env, *client.Client) map[string]any {
			return map[string]any{"model": "mdl_nope"}
		}, []string{`model "mdl_nope" not found: call list_models`}},
		{"delete of a model named like nothing", "delete_model", func(*testing.T, *env, *client.Client) map[string]any {
			return map[string]any{"model": "scratch"}
		}, []string{`model "scratch" not found`}},
		{"delete_model blocked by dependents", "delete_model", func(*testing.T, *env, *client.Client) map[string]any {
			return map[string]any{"model": "customers"}
		}, []string{"model customers cannot be deleted", `audience "California pro customers"`, `model "orders"`, "Delete or change them first"}},
		{"delete_audience used by a sync", "delete_audience", func(t *testing.T, e *env, _ *client.Client) map[string]any {
			return map[string]any{"audience": e.audienceID(t, "California pro customers")}
		}, []string{"audience California pro customers cannot be deleted", "sync of the audience"}},
		{"delete_audience included by another audience", "delete_audience", func(t *testing.T, e *env, c *client.Client) map[string]any {
			var base struct {
				Audience struct {
					ID string `json:"id"`
				} `json:"audience"`
			}
			structured(t, call(t, c, "create_audience", map[string]any{"name": "new yorkers",
				"definition": map[string]any{"model": "customers", "conditions": map[string]any{"column": "state", "operator": "equals", "value": "NY"}}}), &base)
			call(t, c, "create_audience", map[string]any{"name": "pro new yorkers",
				"definition": map[string]any{"model": "customers", "conditions": map[string]any{"all": []any{
					map[string]any{"in_audience": base.Audience.ID},
					map[string]any{"column": "plan", "operator": "equals", "value": "pro"}}}}})
			return map[string]any{"audience": base.Audience.ID}
		}, []string{"audience new yorkers cannot be deleted", `audience "pro new yorkers"`, "includes or excludes it"}},
		{"delete of an unknown audience", "delete_audience", func(*testing.T, *env, *client.Client) map[string]any {
			return map[string]any{"audience": "aud_nope"}
		}, []string{`audience "aud_nope" not found: call list_audiences`}},
		{"update of an unknown audience", "update_audience", func(*testing.T, *env, *client.Client) map[string]any {
			return map[string]any{"audience": "aud_nope", "name": "renamed"}
		}, []string{`audience "aud_nope" not found`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, withPolicies(t, queuePolicies))
			key, k := e.key(t, "agent-1", "member", store.KindAgent, nil)
			c := e.client(t, key)
			args := tc.args(t, e, c)
			before := e.counts(t)
			uses := e.rateLimitUses(t)

			// The dry run says it cannot run, as the call then does.
			// (A call whose facts cannot be computed is an error already.)
			if cres := call(t, c, "check_action", map[string]any{"tool": tc.tool, "arguments": args}); cres.IsError {
				if !strings.Contains(text(cres), tc.want[0]) {
					t.Errorf("check_action(%s %v) = %q, want it to say %q", tc.tool, args, text(cres), tc.want[0])
				}
			} else {
				var check struct{ Effect, Reason string }
				structured(t, cres, &check)
				if check.Effect != "cannot_run" || !strings.Contains(check.Reason, tc.want[0]) {
					t.Errorf("check_action(%s %v) = %+v, want cannot_run saying %q", tc.tool, args, check, tc.want[0])
				}
			}

			res := call(t, c, tc.tool, args)
			msg := text(res)
			if !res.IsError || strings.Contains(msg, "approval_id") || strings.Contains(msg, "/approvals/") {
				t.Fatalf("%s(%v) = %v %q, want a refusal that names no approval", tc.tool, args, res.IsError, msg)
			}
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("%s(%v): %q does not say %q", tc.tool, args, msg, want)
				}
			}
			if strings.Contains(msg, "Internal error") || strings.Contains(msg, "ss_") {
				t.Errorf("the refusal carries internal detail: %q", msg)
			}
			list, err := e.db.ListApprovals(context.Background(), store.ApprovalFilter{WorkspaceID: e.ws.ID})
			if err != nil || len(list) != 0 {
				t.Errorf("approvals after the refusal: %+v (%v), want none", list, err)
			}
			for table, n := range e.counts(t) {
				if want := before[table]; table != "audit_events" && n != want {
					t.Errorf("%s: %d rows after the refusal, want %d", table, n, want)
				}
			}
			// A refused call uses none of the write budget.
			if n := e.rateLimitUses(t); n != uses {
				t.Errorf("rate-limit uses went from %d to %d for a call that could not run", uses, n)
			}
			ev := e.lastAudit(t)
			if ev.Tool != tc.tool || ev.Decision != store.DecisionFailed || ev.ApprovalID != "" || ev.ActorID != k.MemberID || ev.Reason == "" {
				t.Errorf("audit of the refusal = %+v, want a failed call with its reason", ev)
			}
		})
	}
}

// Ordinary agent work still goes through while refusals are in place:
// list, preview masked data, create audiences and safe SQL models, and
// queue deletes that can run.
func TestOrdinaryWorkStillQueuesAndRuns(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, queuePolicies))
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	structured(t, call(t, c, "list_models", nil), &struct{}{})
	var p previewResult
	structured(t, call(t, c, "preview_model", map[string]any{"model": "customers", "limit": 5}), &p)
	if len(p.Rows) != 5 || p.Rows[0]["email"] != "***" && p.Rows[0]["email"] != nil {
		t.Errorf("preview: %+v", p.Rows)
	}
	structured(t, call(t, c, "create_model", map[string]any{"name": "emea", "sql": emeaSQL, "primary_key": "customer_id",
		"columns": []map[string]any{{"name": "customer_id", "pii": "none"}, {"name": "plan", "pii": "none"}}}), &modelChange{})
	structured(t, call(t, c, "create_audience", map[string]any{"name": "emea pro",
		"definition": map[string]any{"model": "emea", "conditions": map[string]any{"column": "plan", "operator": "equals", "value": "pro"}}}), &struct{}{})
	tableModel(t, c, "scratch")
	a := e.queued(t, c, "delete_model", map[string]any{"model": "scratch"})
	if a.State != store.ApprovalPending || len(a.Pins) != 1 || a.Pins[0].Name != "scratch" {
		t.Errorf("queued delete: %s pins %+v", a.State, a.Pins)
	}
}
