package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
)

// withPolicies makes the server decide with the given policy file.
func withPolicies(t testing.TB, yaml string) func(*server.Config) {
	return func(c *server.Config) {
		set, err := guardrails.ParsePolicies("test.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		c.Policies = guardrails.NewEngine(set, c.Store)
		c.BaseURL = "https://signalsmith.example"
	}
}

const testPolicies = `policies:
  - id: no-orders-preview
    type: deny
    resources: [model]
    operations: [read]
    sources: [AI]
    condition: args.model == "orders"
    message: order rows are not for agents
    suggestion: preview the customers model instead
  - id: customers-preview-review
    type: require_approval
    resources: [model]
    operations: [read]
    sources: [AI]
    condition: args.model == "customers" && has(args.limit) && args.limit > 50
    message: large customer previews need a human
  - id: table-reads
    type: rate_limit
    resources: [table]
    operations: [read]
    sources: [AI]
    limit: 2
    window: 1h
    message: two table reads an hour
`

func TestGuardrailsDenyQueueAndLimitThroughTheGate(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	key, k := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)

	res := call(t, c, "preview_model", map[string]any{"model": "orders"})
	if !res.IsError || !strings.Contains(text(res), "no-orders-preview") || !strings.Contains(text(res), "preview the customers model instead") {
		t.Fatalf("denied call: %v %q", res.IsError, text(res))
	}
	ev := e.lastAudit(t)
	if ev.Decision != store.DecisionDenied || len(ev.Rules) != 1 || ev.Rules[0] != "no-orders-preview" || !strings.Contains(ev.Reason, "[policy set ") {
		t.Errorf("audit of the denial = %+v", ev)
	}

	res = call(t, c, "preview_model", map[string]any{"model": "customers", "limit": 80})
	var q struct {
		ApprovalID string `json:"approval_id"`
		State      string `json:"state"`
		URL        string `json:"url"`
	}
	structured(t, res, &q)
	if q.State != store.ApprovalPending || q.URL != "https://signalsmith.example/approvals/"+q.ApprovalID || !strings.Contains(text(res), "has not run") {
		t.Fatalf("queued call: %+v %q", q, text(res))
	}
	a, err := e.db.GetApproval(context.Background(), e.ws.ID, q.ApprovalID)
	customers, _ := e.db.GetModel(context.Background(), e.ws.ID, "customers")
	if err != nil || a.Tool != "preview_model" || a.RequesterID != k.MemberID || string(a.Args) != `{"limit":80,"model":"`+customers.ID+`"}` || a.Rules[0] != "customers-preview-review" {
		t.Fatalf("approval record = %+v (%v)", a, err)
	}
	ev = e.lastAudit(t)
	if ev.Decision != store.DecisionApprovalRequired || ev.ApprovalID != q.ApprovalID {
		t.Errorf("audit of the queued call = %+v", ev)
	}
	// A small preview does not need approval.
	if res := call(t, c, "preview_model", map[string]any{"model": "customers", "limit": 5}); res.IsError {
		t.Fatalf("small preview: %s", text(res))
	}

	for i := range 2 {
		if res := call(t, c, "list_tables", nil); res.IsError {
			t.Fatalf("table read %d: %s", i+1, text(res))
		}
	}
	res = call(t, c, "list_tables", nil)
	if !res.IsError || !strings.Contains(text(res), "Rate limited (table-reads)") || !strings.Contains(text(res), "next call is allowed in") {
		t.Fatalf("third table read: %v %q", res.IsError, text(res))
	}
}

func TestCheckActionHasNoSideEffects(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	type check struct {
		Effect string         `json:"effect"`
		Rules  []string       `json:"rules"`
		Facts  map[string]any `json:"facts"`
	}
	cases := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"preview_model", map[string]any{"model": "orders"}, guardrails.EffectDeny},
		{"preview_model", map[string]any{"model": "customers", "limit": 90}, guardrails.EffectRequireApproval},
		{"preview_model", map[string]any{"model": "customers"}, guardrails.EffectAllow},
		{"list_tables", map[string]any{}, guardrails.EffectAllow},
		{"list_tables", map[string]any{}, guardrails.EffectAllow},
		{"list_tables", map[string]any{}, guardrails.EffectAllow},
	}
	for _, tc := range cases {
		var got check
		structured(t, call(t, c, "check_action", map[string]any{"tool": tc.tool, "arguments": tc.args}), &got)
		if got.Effect != tc.want {
			t.Errorf("check_action %s %v = %+v, want %s", tc.tool, tc.args, got, tc.want)
		}
	}
	// Three checks of list_tables used none of the two allowed reads, and
	// the require_approval check queued nothing.
	for i := range 2 {
		if res := call(t, c, "list_tables", nil); res.IsError {
			t.Fatalf("table read %d after checks: %s", i+1, text(res))
		}
	}
	list, err := e.db.ListApprovals(context.Background(), store.ApprovalFilter{WorkspaceID: e.ws.ID})
	if err != nil || len(list) != 0 {
		t.Fatalf("check_action queued approvals: %v %v", list, err)
	}

	// A tool the role may not use is reported as forbidden; unknown tools
	// and bad arguments are errors.
	if err := e.db.PutRole(context.Background(), store.Role{WorkspaceID: e.ws.ID, Name: "reader", Permissions: []string{"sources.read"}}); err != nil {
		t.Fatal(err)
	}
	readerKey, _ := e.key(t, "reader", "reader", store.KindAgent, nil)
	rc := e.client(t, readerKey)
	var got check
	structured(t, call(t, rc, "check_action", map[string]any{"tool": "get_model", "arguments": map[string]any{"model": "customers"}}), &got)
	if got.Effect != "forbidden" {
		t.Errorf("check_action for a forbidden tool = %+v", got)
	}
	for _, bad := range []map[string]any{{"tool": "drop_all"}, {"tool": "check_action"}, {}, {"tool": 3}} {
		if res := call(t, c, "check_action", bad); !res.IsError {
			t.Errorf("check_action(%v) succeeded: %s", bad, text(res))
		}
	}
}

func TestAgentFollowsItsApprovalRequests(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	var q struct {
		ApprovalID string `json:"approval_id"`
	}
	structured(t, call(t, c, "preview_model", map[string]any{"model": "customers", "limit": 60}), &q)

	var list struct {
		Approvals []struct {
			ID    string `json:"id"`
			State string `json:"state"`
			Next  string `json:"next"`
		} `json:"approvals"`
	}
	structured(t, call(t, c, "list_approvals", map[string]any{"state": "pending"}), &list)
	if len(list.Approvals) != 1 || list.Approvals[0].ID != q.ApprovalID || !strings.Contains(list.Approvals[0].Next, "do not call the tool again") {
		t.Fatalf("list_approvals = %+v", list)
	}
	var got struct {
		State string `json:"state"`
		URL   string `json:"url"`
	}
	structured(t, call(t, c, "get_approval", map[string]any{"approval": q.ApprovalID}), &got)
	if got.State != store.ApprovalPending || !strings.HasSuffix(got.URL, "/approvals/"+q.ApprovalID) {
		t.Fatalf("get_approval = %+v", got)
	}

	// Another agent of the same workspace sees none of it.
	otherKey, _ := e.key(t, "agent-2", "member", store.KindAgent, nil)
	oc := e.client(t, otherKey)
	if res := call(t, oc, "get_approval", map[string]any{"approval": q.ApprovalID}); !res.IsError || !strings.Contains(text(res), "not found") {
		t.Errorf("another agent read the request: %s", text(res))
	}
	if res := call(t, oc, "cancel_approval", map[string]any{"approval": q.ApprovalID}); !res.IsError {
		t.Errorf("another agent cancelled the request: %s", text(res))
	}

	if res := call(t, c, "cancel_approval", map[string]any{"approval": q.ApprovalID}); res.IsError {
		t.Fatalf("cancel_approval: %s", text(res))
	}
	if res := call(t, c, "cancel_approval", map[string]any{"approval": q.ApprovalID}); !res.IsError || !strings.Contains(text(res), "no longer pending") {
		t.Errorf("cancelling twice: %v %s", res.IsError, text(res))
	}
	a, err := e.db.GetApproval(context.Background(), e.ws.ID, q.ApprovalID)
	if err != nil || a.State != store.ApprovalCancelled {
		t.Fatalf("stored state after cancel: %+v %v", a, err)
	}
	for _, bad := range []map[string]any{{"state": "maybe"}, {"limit": 0.5}, {"limit": 1000}} {
		if res := call(t, c, "list_approvals", bad); !res.IsError {
			t.Errorf("list_approvals(%v) accepted", bad)
		}
	}
}
