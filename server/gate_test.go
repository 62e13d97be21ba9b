package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/tools"
)

// gatePolicies are testPolicies with deletes of models sent to a human.
const gatePolicies = testPolicies + `  - id: model-deletes-review
    type: require_approval
    resources: [model]
    operations: [delete]
    sources: [AI]
    message: deleting a model needs a human
`

// TestCheckActionSaysWhatTheCallDoes: check_action and the call itself go
// through one decision path, so what check_action reports for a call is
// what the call then meets, for every outcome: it runs, waits for a
// human, is denied by a policy or by RBAC, cannot run, or has an argument
// to fix.
func TestCheckActionSaysWhatTheCallDoes(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, gatePolicies))
	ctx := context.Background()
	if err := e.db.PutRole(ctx, store.Role{WorkspaceID: e.ws.ID, Name: "table-reader", Permissions: []string{"sources.read"}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, role, tool string
		args             map[string]any
		check            string // check_action's effect; "" when it answers an error
		decision         string // the audit decision of the call
		text             string // in the call's answer
	}{
		{"allowed", "member", "get_model", map[string]any{"model": "customers"}, "allow", store.DecisionAllowed, "customers"},
		{"queued for a human", "member", "preview_model", map[string]any{"model": "customers", "limit": 80}, "require_approval", store.DecisionApprovalRequired, "has not run"},
		{"denied by a policy", "member", "preview_model", map[string]any{"model": "orders"}, "deny", store.DecisionDenied, "no-orders-preview"},
		{"forbidden by the role", "table-reader", "get_model", map[string]any{"model": "customers"}, "forbidden", store.DecisionDenied, "Permission denied"},
		{"cannot run", "member", "delete_model", map[string]any{"model": "no_such_model"}, "cannot_run", store.DecisionFailed, "not queued"},
		{"an argument to fix", "member", "create_audience", map[string]any{"name": "x", "definition": map[string]any{"model": "customers"}}, "", store.DecisionFailed, "conditions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, k := e.key(t, "agent-"+strings.ReplaceAll(tc.name, " ", "-"), tc.role, store.KindAgent, nil)
			c := e.client(t, key)
			res := call(t, c, "check_action", map[string]any{"tool": tc.tool, "arguments": tc.args})
			if tc.check == "" {
				if !res.IsError {
					t.Errorf("check_action answered %s, want an error", text(res))
				}
			} else {
				var got struct {
					Effect string `json:"effect"`
				}
				structured(t, res, &got)
				if got.Effect != tc.check {
					t.Errorf("check_action effect %q, want %q (%s)", got.Effect, tc.check, text(res))
				}
			}

			res = call(t, c, tc.tool, tc.args)
			if res.IsError != (tc.decision != store.DecisionAllowed && tc.decision != store.DecisionApprovalRequired) || !strings.Contains(text(res), tc.text) {
				t.Errorf("the call answered %v %q, want %q", res.IsError, text(res), tc.text)
			}
			var last store.AuditEvent
			for _, ev := range e.audit(t) {
				if ev.ActorID == k.MemberID && ev.Tool == tc.tool {
					last = ev
				}
			}
			if last.Decision != tc.decision {
				t.Errorf("the call's audit decision %q (%s), want %q", last.Decision, last.Reason, tc.decision)
			}
			list, err := e.db.ListApprovals(ctx, store.ApprovalFilter{WorkspaceID: e.ws.ID, RequesterID: k.MemberID})
			if want := tc.decision == store.DecisionApprovalRequired; err != nil || (len(list) == 1) != want || len(list) > 1 {
				t.Errorf("approvals of the caller: %d (%v), want one: %v", len(list), err, want)
			}
		})
	}
}

// TestApprovedCallMeetsTheChecksOfACall: an approved call runs through the
// same decision path as a direct call, for the requester as they are when
// it runs: a change since the approval that would stop the call stops the
// approved one, and the approval fails with the reason.
func TestApprovedCallMeetsTheChecksOfACall(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		change  func(t *testing.T, e *env)
		outcome string // in the approval's outcome; "" for a call that runs
	}{
		{"nothing changed", func(*testing.T, *env) {}, ""},
		{"the kill switch is on", func(t *testing.T, e *env) {
			if err := e.db.SetWritesFrozen(context.Background(), e.ws.ID, true); err != nil {
				t.Fatal(err)
			}
		}, "kill switch"},
		{"the role lost the permission", func(t *testing.T, e *env) {
			if err := e.db.PutRole(context.Background(), store.Role{WorkspaceID: e.ws.ID, Name: "modeller", Permissions: []string{"models.read", "models.create"}}); err != nil {
				t.Fatal(err)
			}
		}, "may no longer do this"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, withPolicies(t, gatePolicies))
			ctx := context.Background()
			if err := e.db.PutRole(ctx, store.Role{WorkspaceID: e.ws.ID, Name: "modeller", Permissions: []string{"models.read", "models.create", "models.delete"}}); err != nil {
				t.Fatal(err)
			}
			key, _ := e.key(t, "agent-1", "modeller", store.KindAgent, nil)
			c := e.client(t, key)
			m := tableModel(t, c, "orders_copy")
			a := e.queued(t, c, "delete_model", map[string]any{"model": m.Name})
			tc.change(t, e)
			got := e.decideAndRun(t, a.ID)
			_, err := e.db.GetModel(ctx, e.ws.ID, m.ID)
			if tc.outcome == "" {
				if got.State != store.ApprovalSucceeded || err == nil {
					t.Fatalf("approval %s %q; model still there: %v", got.State, got.Outcome, err == nil)
				}
				return
			}
			if got.State != store.ApprovalFailed || !strings.Contains(got.Outcome, tc.outcome) || err != nil {
				t.Errorf("approval %s %q, want failed with %q; model read after: %v", got.State, got.Outcome, tc.outcome, err)
			}
		})
	}
}

// TestPreviewShowsOnlyWhatItMaySelect: the handle's preview masks by
// position, so SQL that selects anything but the columns a preview may
// show, in their order, is refused and shows nothing.
func TestPreviewShowsOnlyWhatItMaySelect(t *testing.T) {
	t.Parallel()
	var wh store.Warehouse
	e := setup(t, func(c *server.Config) { wh = c.Warehouse })
	ctx := context.Background()
	_, k := e.key(t, "agent-1", "member", store.KindAgent, nil)
	p, err := e.db.Principal(ctx, k.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bound := tools.NewWarehouses(wh, e.db, store.QueryLimits{Timeout: 5 * time.Second, MaxRows: 100}, nil).Bind(p)
	cols := []store.Column{
		{Name: "customer_id", Type: store.TypeString, PII: store.PIINone},
		{Name: "email", Type: store.TypeString, PII: store.PIIRedacted},
		{Name: "notes", Type: store.TypeString, PII: store.PIIBlocked},
	}
	cases := []struct {
		name string
		sql  string
		ok   bool
	}{
		{"the shown columns", `SELECT customer_id, email FROM customers ORDER BY customer_id LIMIT ?`, true},
		{"a hidden column in place of a shown one", `SELECT customer_id, notes AS email FROM customers LIMIT ?`, true},
		{"a hidden column besides", `SELECT customer_id, email, notes FROM customers LIMIT ?`, false},
		{"the columns swapped", `SELECT email, customer_id FROM customers LIMIT ?`, false},
		{"a column too few", `SELECT customer_id FROM customers LIMIT ?`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var asked []string
			got, err := bound.Preview(ctx, cols, 3, "the test preview", func(names []string, limit int) (string, []any, error) {
				asked = names
				return tc.sql, []any{limit}, nil
			})
			if strings.Join(asked, ",") != "customer_id,email" {
				t.Errorf("the SQL was asked for %v, want the columns a preview may show", asked)
			}
			if !tc.ok {
				if err == nil {
					t.Errorf("preview of %q answered %v, want it refused", tc.sql, got.Rows)
				}
				return
			}
			if err != nil || len(got.Rows) != 3 || strings.Join(got.Hidden, ",") != "notes" {
				t.Fatalf("preview = %+v, %v", got, err)
			}
			for _, row := range got.Rows {
				if v, ok := row["email"].(string); ok && v != "***" || len(row) != 2 {
					t.Errorf("row %v: email not masked, or other columns shown", row)
				}
			}
		})
	}
}
