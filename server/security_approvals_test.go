package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/store"
)

// Approvals pin the world they were reviewed in: an agent that changes,
// renames or swaps what an approval names between the human's review and
// the execution gets a failed approval, never a call on other objects.

// pinPolicies queue deletions and audiences of more than 10 people, and
// leave model changes to the agent.
const pinPolicies = `policies:
  - id: ai-delete
    type: require_approval
    resources: ["*"]
    operations: [delete]
    sources: [AI]
    message: deletions by an AI agent need a human's approval
  - id: big-audience
    type: require_approval
    resources: [audience]
    operations: [create, update]
    sources: [AI]
    condition: facts.estimated_size > 10
    message: the audience would hold more than 10 people
`

// queued calls a tool that must wait for a human and returns its approval.
func (e *env) queued(t *testing.T, c *client.Client, tool string, args map[string]any) store.Approval {
	t.Helper()
	var q struct {
		ApprovalID string `json:"approval_id"`
	}
	structured(t, call(t, c, tool, args), &q)
	if q.ApprovalID == "" {
		t.Fatalf("%s(%v) was not queued for approval", tool, args)
	}
	return e.approval(t, q.ApprovalID)
}

// decideAndRun has a fresh admin approve the approval and runs it, as the
// web queue does.
func (e *env) decideAndRun(t *testing.T, id string) store.Approval {
	t.Helper()
	_, k := e.key(t, "admin-"+id, "admin", store.KindUser, nil)
	admin, err := e.db.Principal(context.Background(), k.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := approvals.NewQueue(e.db, e.rbac, 0).Decide(context.Background(), admin, store.SourceUI, id, true, "ok")
	if err != nil {
		t.Fatal(err)
	}
	a, err = e.srv.Gate().Execute(context.Background(), a, store.SourceUI)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tableModel creates a model over analytics.orders as the agent.
func tableModel(t *testing.T, c *client.Client, name string) store.Model {
	t.Helper()
	var m modelChange
	structured(t, call(t, c, "create_model", map[string]any{"name": name, "table": "analytics.orders", "primary_key": "order_id"}), &m)
	return m.Model
}

// emeaSQL is a SQL model of the EMEA customers; allSQL widens it to all.
const (
	emeaSQL = "SELECT customer_id, region, plan FROM customers WHERE region = 'EMEA'"
	allSQL  = "SELECT customer_id, region, plan FROM customers"
)

func TestApprovalsPinWhatWasReviewed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// run has the agent c ask for something, meddle, and has it
		// approved; it checks what the user would notice.
		run func(t *testing.T, e *env, c *client.Client)
	}{
		{"a rename swap before approval fails it and the other model survives", func(t *testing.T, e *env, c *client.Client) {
			scratch, other := tableModel(t, c, "scratch"), tableModel(t, c, "precious")
			a := e.queued(t, c, "delete_model", map[string]any{"model": "scratch"})
			// The human reviews "delete scratch"; then the agent swaps names.
			call(t, c, "update_model", map[string]any{"model": "scratch", "name": "scratch_old"})
			call(t, c, "update_model", map[string]any{"model": "precious", "name": "scratch"})
			got := e.decideAndRun(t, a.ID)
			if got.State != store.ApprovalFailed || !strings.Contains(got.Outcome, "changed since it was approved") || !strings.Contains(got.Outcome, "ask again") {
				t.Errorf("approval after the swap: %s %q", got.State, got.Outcome)
			}
			for _, m := range []store.Model{scratch, other} {
				if _, err := e.db.GetModel(context.Background(), e.ws.ID, m.ID); err != nil {
					t.Errorf("model %s (%s) is gone after the failed approval: %v", m.Name, m.ID, err)
				}
			}
		}},
		{"a model updated between review and approval fails it with the reason", func(t *testing.T, e *env, c *client.Client) {
			scratch := tableModel(t, c, "scratch")
			a := e.queued(t, c, "delete_model", map[string]any{"model": "scratch"})
			call(t, c, "update_model", map[string]any{"model": "scratch", "description": "now the one everything needs"})
			got := e.decideAndRun(t, a.ID)
			want := `the model "scratch" (` + scratch.ID + `) changed since it was approved (version 1 then, 2 now), so the call did not run; ask again`
			if got.State != store.ApprovalFailed || got.Outcome != want {
				t.Errorf("approval after the update: %s %q, want failed %q", got.State, got.Outcome, want)
			}
			if _, err := e.db.GetModel(context.Background(), e.ws.ID, scratch.ID); err != nil {
				t.Errorf("scratch is gone after the failed approval: %v", err)
			}
			// The agent and the approval queue both see why.
			var view struct {
				State   string `json:"state"`
				Outcome string `json:"outcome"`
			}
			structured(t, call(t, c, "get_approval", map[string]any{"approval": a.ID}), &view)
			if view.State != store.ApprovalFailed || view.Outcome != want {
				t.Errorf("get_approval: %+v", view)
			}
			adminKey, _ := e.key(t, "reader", "admin", store.KindUser, nil)
			status, out := api(t, e.http.URL, "GET", "/api/v1/approvals/"+a.ID, adminKey, "")
			if status != 200 || !strings.Contains(mustJSON(t, out), "changed since it was approved") {
				t.Errorf("API: %d %v", status, out)
			}
			w := newWeb(t, e.http.URL, nil)
			w.signIn(adminKey)
			_, page := w.get("/approvals/" + a.ID)
			for _, want := range []string{"Objects pinned", "<td>scratch</td><td><code>" + scratch.ID + "</code></td><td>1</td>", "changed since it was approved (version 1 then, 2 now)"} {
				if !strings.Contains(page, want) {
					t.Errorf("the approval's page lacks %q", want)
				}
			}
		}},
		{"an audience's model widened between review and approval fails it", func(t *testing.T, e *env, c *client.Client) {
			structured(t, call(t, c, "create_model", map[string]any{"name": "emea", "sql": emeaSQL, "primary_key": "customer_id",
				"columns": []map[string]any{{"name": "customer_id", "pii": "none"}, {"name": "region", "pii": "none"}, {"name": "plan", "pii": "none"}}}), &modelChange{})
			a := e.queued(t, c, "create_audience", map[string]any{"name": "emea everyone",
				"definition": map[string]any{"model": "emea", "conditions": map[string]any{"all": []any{}}}})
			if a.Facts["estimated_size"] == float64(demoScale) {
				t.Fatalf("the EMEA model already holds every customer: %v", a.Facts)
			}
			// The human saw the EMEA count; the agent then widens the model.
			call(t, c, "update_model", map[string]any{"model": "emea", "sql": allSQL})
			got := e.decideAndRun(t, a.ID)
			if got.State != store.ApprovalFailed || !strings.Contains(got.Outcome, `the model "emea"`) || !strings.Contains(got.Outcome, "changed since it was approved") {
				t.Errorf("approval after widening: %s %q", got.State, got.Outcome)
			}
			list, _ := e.db.ListAudiences(context.Background(), e.ws.ID)
			for _, x := range list {
				if x.Name == "emea everyone" {
					t.Errorf("the audience was created over the widened model: %+v", x)
				}
			}
		}},
		{"an unchanged world executes", func(t *testing.T, e *env, c *client.Client) {
			scratch := tableModel(t, c, "scratch")
			del := e.queued(t, c, "delete_model", map[string]any{"model": "scratch"})
			aud := e.queued(t, c, "create_audience", map[string]any{"name": "everyone",
				"definition": map[string]any{"model": "customers", "conditions": map[string]any{"all": []any{}}}})
			if got := e.decideAndRun(t, del.ID); got.State != store.ApprovalSucceeded {
				t.Errorf("delete: %s %q", got.State, got.Outcome)
			}
			if _, err := e.db.GetModel(context.Background(), e.ws.ID, scratch.ID); err == nil {
				t.Error("scratch is still there after the approved delete")
			}
			if got := e.decideAndRun(t, aud.ID); got.State != store.ApprovalSucceeded || !strings.Contains(got.Outcome, `"name":"everyone"`) {
				t.Errorf("create_audience: %s %q", got.State, got.Outcome)
			}
		}},
		{"pinned arguments name objects by id", func(t *testing.T, e *env, c *client.Client) {
			scratch := tableModel(t, c, "scratch")
			customers, err := e.db.GetModel(context.Background(), e.ws.ID, "customers")
			if err != nil {
				t.Fatal(err)
			}
			del := e.queued(t, c, "delete_model", map[string]any{"model": "scratch"})
			if string(del.Args) != `{"model":"`+scratch.ID+`"}` {
				t.Errorf("delete_model pinned %s, want the model's id", del.Args)
			}
			aud := e.queued(t, c, "create_audience", map[string]any{"name": "everyone",
				"definition": map[string]any{"model": "customers", "conditions": map[string]any{"all": []any{}}}})
			var args struct {
				Definition struct {
					Model string `json:"model"`
				} `json:"definition"`
			}
			if err := json.Unmarshal(aud.Args, &args); err != nil || args.Definition.Model != customers.ID {
				t.Errorf("create_audience pinned %s, want the definition over model %s", aud.Args, customers.ID)
			}
			// The agent sees the same arguments it will get run.
			var view struct {
				Args json.RawMessage `json:"args"`
			}
			structured(t, call(t, c, "get_approval", map[string]any{"approval": del.ID}), &view)
			if string(view.Args) != string(del.Args) {
				t.Errorf("get_approval shows %s, the approval pins %s", view.Args, del.Args)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, withPolicies(t, pinPolicies))
			key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
			tc.run(t, e, e.client(t, key))
		})
	}
}

// mustJSON encodes v for looking into it.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
