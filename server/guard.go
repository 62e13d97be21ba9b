package server

import (
	"context"
	"encoding/json"
	"errors"
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
	store  store.Store
	log    *slog.Logger
	// approvalURL turns an approval id into the link a human opens.
	approvalURL func(id string) string
}

// verdict is the guardrail outcome of one call, with the facts it used.
type verdict struct {
	guardrails.Decision
	Facts map[string]any
}

// decide computes the call's facts and decides it with the active policies.
// With dry set nothing is counted. A *tools.Error from the facts is a bad
// argument the caller should fix; any other error is returned beside a
// deny verdict (fail closed).
func (gd *guard) decide(ctx context.Context, t tools.Tool, call *tools.Call, source string, raw json.RawMessage, dry bool) (verdict, error) {
	return gd.decideAs(ctx, t, call, source, raw, raw, dry)
}

// decideAs is decide where the policies see the arguments as view while
// the tool computes its facts from raw: an approval's pinned arguments name
// objects by id, but its policies were written for, and decided on, the
// names the agent gave.
func (gd *guard) decideAs(ctx context.Context, t tools.Tool, call *tools.Call, source string, raw, view json.RawMessage, dry bool) (verdict, error) {
	v := verdict{Decision: guardrails.Decision{Effect: guardrails.EffectDeny, Reason: "guardrails could not decide, so the call is denied"}}
	if gd == nil || gd.engine == nil {
		return v, errors.New("no guardrail engine configured")
	}
	in := guardrails.Input{
		Principal: call.Principal,
		Source:    source,
		Tool:      t.Spec.Name,
		Resource:  t.Resource,
		Operation: t.Operation(),
	}
	if len(view) > 0 {
		// Arguments that are not an object reach the policies as none; the
		// tool itself refuses them.
		_ = json.Unmarshal(view, &in.Args)
	}
	if t.Facts != nil {
		facts, err := t.Facts(ctx, call, raw)
		if err != nil {
			return v, fmt.Errorf("facts of %s: %w", t.Spec.Name, err)
		}
		// A fact the tool does not declare, or of another type, is a bug
		// of the tool: deny rather than decide on it.
		if err := guardrails.CheckFacts(t.FactNames, facts); err != nil {
			return v, fmt.Errorf("facts of %s: %w", t.Spec.Name, err)
		}
		in.Facts = facts
		v.Facts = facts
		call.Facts = facts
	}
	if source == store.SourceAI && in.Operation != "read" {
		frozen, err := gd.store.WritesFrozen(ctx, call.Principal.WorkspaceID)
		if err != nil {
			return v, fmt.Errorf("read kill switch: %w", err)
		}
		in.WritesFrozen = frozen
	}
	var d guardrails.Decision
	var err error
	if dry {
		d, err = gd.engine.DryRun(ctx, in)
	} else {
		d, err = gd.engine.Decide(ctx, in)
	}
	v.Decision = d
	return v, err
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

// Check is check_action's decision path: RBAC, facts and a dry run of the
// policies for a call that is not made. Nothing is written or counted.
func (g *Gate) Check(ctx context.Context, call *tools.Call, name string, raw json.RawMessage) (tools.Check, error) {
	t, ok := g.tools[name]
	if !ok {
		return tools.Check{}, tools.Errorf("unknown tool %q: call tools/list to see the tools you may use", guardrails.RedactString(name))
	}
	c := tools.Check{Tool: name, Permission: t.Permission}
	if t.Permission != "" {
		acc, err := g.rbac.Authorize(ctx, call.Principal, t.Permission)
		if err != nil {
			return tools.Check{}, err
		}
		if !acc.Allowed {
			c.Effect, c.Reason = "forbidden", acc.Reason
			c.Suggestions = []string{fmt.Sprintf("ask a workspace admin for a role with %q", t.Permission)}
			return c, nil
		}
	}
	target := &tools.Call{Principal: call.Principal, Tool: name}
	v, err := g.guard.decide(ctx, t, target, store.SourceAI, raw, true)
	if err != nil {
		if te, ok := tools.AsError(err); ok {
			return tools.Check{}, tools.Errorf("the arguments for %s are not valid: %s", name, te.Msg)
		}
		return tools.Check{}, err
	}
	c.Effect, c.Rules, c.Reason, c.Suggestions = v.Effect, v.Rules, v.Reason, v.Suggestions
	c.Facts, c.PolicyVersion = v.Facts, v.PolicyVersion
	if v.Effect == guardrails.EffectRequireApproval && t.Resolve != nil {
		// The call would be refused, not queued, if it cannot run: say so,
		// as the call would.
		if _, err := t.Resolve(ctx, target, raw); err != nil {
			te, ok := tools.AsError(err)
			if !ok {
				return tools.Check{}, err
			}
			c.Effect, c.Rules, c.Reason = "cannot_run", nil, te.Msg
			c.Suggestions = []string{"fix what the reason names; the call would be refused, not queued for a human"}
		}
	}
	return c, nil
}
