package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/tools"
)

// guard is the guardrail step of the gate: facts, the kill switch, the AI
// policies and, for require_approval, the approval queue.
type guard struct {
	engine *guardrails.Engine
	queue  *approvals.Queue
	store  killSwitch
	log    *slog.Logger
	// approvalURL turns an approval id into the link a human opens.
	approvalURL func(id string) string

	// policies, when set, keeps engine on the stored policy set.
	policies *storedPolicies
}

// killSwitch is the read side of store.KillSwitch, which the guard checks
// before the policies.
type killSwitch interface {
	WritesFrozen(ctx context.Context, workspaceID string) (bool, error)
}

// verdict is the guardrail outcome of one call, with the facts it used.
type verdict struct {
	guardrails.Decision
	Facts map[string]any
}

// undecided is the verdict of a call the guardrails did not decide: a
// deny (fail closed).
func undecided() verdict {
	return verdict{Decision: guardrails.Decision{Effect: guardrails.EffectDeny, Reason: "guardrails could not decide, so the call is denied"}}
}

// recordFacts records in ev the facts the decision of its call used
// (store.AuditFactsArg of its args), so the decision can be replayed.
func recordFacts(ev *store.AuditEvent, v verdict) {
	if v.Facts != nil {
		ev.Args = store.WithAuditFacts(ev.Args, v.Facts)
	}
}

// refund gives back the rate-limit uses of a call that did not go on to
// run or to be queued. A refund that fails leaves the uses counted (the
// caller's budget is smaller, never larger) and is logged.
func (gd *guard) refund(ctx context.Context, v *verdict, requestID string) {
	if err := gd.engine.Refund(context.WithoutCancel(ctx), &v.Decision); err != nil {
		gd.log.Error("refund rate limits", "request_id", requestID, "err", err)
	}
}

// deniedMessage is what the agent reads when the guardrails stop a call:
// which rules, why, and what it can do instead.
func deniedMessage(v verdict) string {
	var b strings.Builder
	switch v.Effect {
	case guardrails.EffectRateLimited:
		b.WriteString("Rate limited")
	default:
		b.WriteString("Denied by policy")
	}
	fmt.Fprintf(&b, " (%s): %s.", strings.Join(v.Rules, ", "), v.Reason)
	if len(v.Suggestions) > 0 {
		b.WriteString(" What you can do: " + strings.Join(v.Suggestions, "; ") + ".")
	}
	b.WriteString(" Do not retry the same call unchanged.")
	return b.String()
}

// queued is the result an agent gets when its call waits for a human.
type queued struct {
	ApprovalID string   `json:"approval_id"`
	State      string   `json:"state"`
	URL        string   `json:"url"`
	ExpiresAt  string   `json:"expires_at"`
	Rules      []string `json:"rules"`
	Reason     string   `json:"reason"`
	Message    string   `json:"message"`
}

// Check is check_action's entry to the gate's decision path (evaluate,
// as a dry run): what a call would meet, RBAC, the guardrails and, for a
// call that needs a human, whether it could run at all. Nothing is written,
// counted or queued. An unknown tool or a bad argument is a *tools.Error.
func (g *Gate) Check(ctx context.Context, call *tools.Call, name string, raw json.RawMessage) (tools.Check, error) {
	o, err := g.evaluate(ctx, request{principal: call.Principal, source: store.SourceAI, tool: name, args: raw, mode: modeDryRun})
	if err != nil {
		return tools.Check{}, err
	}
	c := tools.Check{Tool: name, Permission: o.tool.Permission}
	v := o.verdict
	switch o.kind {
	case badArgument:
		return tools.Check{}, tools.Errorf("%s", o.message)
	case forbidden:
		c.Effect, c.Reason, c.Suggestions = "forbidden", o.reason, o.suggestions
		return c, nil
	}
	c.Effect, c.Rules, c.Reason, c.Suggestions = v.Effect, v.Rules, v.Reason, v.Suggestions
	c.Facts, c.PolicyVersion = v.Facts, v.PolicyVersion
	if o.kind == cannotRun {
		// The call would be refused, not queued, if it cannot run: say so,
		// as the call would.
		c.Effect, c.Rules, c.Reason = "cannot_run", nil, o.message
		c.Suggestions = []string{"fix what the reason names; the call would be refused, not queued for a human"}
	}
	return c, nil
}
