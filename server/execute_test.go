package server_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
)

// queuedPreview has the agent ask for a large customer preview, which the
// test policies send to a human, and an admin approve it.
func queuedPreview(t *testing.T, e *env, agentKey string) store.Approval {
	t.Helper()
	id := requestApproval(t, e, agentKey, 60)
	_, adminKey := e.key(t, "admin-"+id, "admin", store.KindUser, nil)
	admin, err := e.db.Principal(context.Background(), adminKey.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := approvals.NewQueue(e.db, e.rbac, 0).Decide(context.Background(), admin, store.SourceUI, id, true, "ok")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestApprovedCallRunsOnceThroughTheGate(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	key, k := e.key(t, "agent-1", "member", store.KindAgent, nil)
	a := queuedPreview(t, e, key)

	var ran, lost atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := e.srv.Gate().Execute(context.Background(), a, store.SourceUI)
			switch {
			case err == nil:
				ran.Add(1)
			case errors.Is(err, store.ErrConflict):
				lost.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ran.Load() != 1 || lost.Load() != 7 {
		t.Fatalf("%d executions ran, %d lost; want exactly one to run", ran.Load(), lost.Load())
	}
	got, err := e.db.GetApproval(context.Background(), e.ws.ID, a.ID)
	if err != nil || got.State != store.ApprovalSucceeded || !strings.Contains(got.Outcome, `"row_count":60`) || strings.Contains(got.Outcome, "@example.") {
		t.Fatalf("after execution: %s %.200s (%v)", got.State, got.Outcome, err)
	}
	var executed []store.AuditEvent
	for _, ev := range e.audit(t) {
		if ev.ApprovalID == a.ID && ev.Decision == store.DecisionExecuted {
			executed = append(executed, ev)
		}
	}
	if len(executed) != 1 || executed[0].ActorID != k.MemberID || executed[0].Source != store.SourceUI || !strings.HasPrefix(executed[0].Reason, "approved by admin-") {
		t.Errorf("execution audit = %+v", executed)
	}
}

func TestApprovedCallFailsWhenTheWorldChanged(t *testing.T) {
	t.Parallel()
	var engine *guardrails.Engine
	e := setup(t, withPolicies(t, testPolicies), func(c *server.Config) { engine = c.Policies })
	key, k := e.key(t, "agent-1", "member", store.KindAgent, nil)

	// A policy now denies what was approved.
	a := queuedPreview(t, e, key)
	stricter, err := guardrails.ParsePolicies("stricter.yaml", []byte(testPolicies+`  - id: no-customer-previews
    type: deny
    resources: [model]
    operations: [read]
    sources: [AI]
    condition: args.model == "customers"
    message: customer previews are off for now
`))
	if err != nil {
		t.Fatal(err)
	}
	old := engine.Policies()
	engine.SetPolicies(stricter)
	got, err := e.srv.Gate().Execute(context.Background(), a, store.SourceUI)
	if err != nil || got.State != store.ApprovalFailed || !strings.Contains(got.Outcome, "customer previews are off") {
		t.Fatalf("denied at execution: %s %q %v", got.State, got.Outcome, err)
	}
	engine.SetPolicies(old)

	// The requester's key is revoked before the approval runs.
	b := queuedPreview(t, e, key)
	if _, err := e.db.RevokeKey(context.Background(), e.ws.ID, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err = e.srv.Gate().Execute(context.Background(), b, store.SourceUI)
	if err != nil || got.State != store.ApprovalFailed || !strings.Contains(got.Outcome, "revoked") {
		t.Fatalf("revoked requester: %s %q %v", got.State, got.Outcome, err)
	}
	// A pending approval cannot be executed at all.
	key2, _ := e.key(t, "agent-2", "member", store.KindAgent, nil)
	pending := e.approval(t, requestApproval(t, e, key2, 70))
	if _, err := e.srv.Gate().Execute(context.Background(), pending, store.SourceUI); !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrInvalid) {
		t.Errorf("executing a pending approval: %v", err)
	}
}

func TestApprovedButNotStartedRunsOnResume(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, testPolicies))
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	a := queuedPreview(t, e, key) // approved; the process stopped before running it
	n, err := e.srv.ResumeApproved(context.Background(), e.ws.ID)
	if err != nil || n != 1 {
		t.Fatalf("resume ran %d (%v)", n, err)
	}
	got, _ := e.db.GetApproval(context.Background(), e.ws.ID, a.ID)
	if got.State != store.ApprovalSucceeded {
		t.Fatalf("after resume: %s %q", got.State, got.Outcome)
	}
	if n, _ := e.srv.ResumeApproved(context.Background(), e.ws.ID); n != 0 {
		t.Errorf("a second resume ran %d approvals again", n)
	}
}
