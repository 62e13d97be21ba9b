package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/tools"
)

// maxOutcome caps the result text stored on an approval.
const maxOutcome = 64 << 10

// Execute runs an approved call through the same gate as a direct call, at
// most once: it claims the approval (approved -> executing), reads the
// requester afresh (a revoked key or a lost permission fails it), checks
// RBAC and the guardrails again, and runs the pinned tool with the pinned
// arguments. The approval satisfies only the require_approval rules it was
// created for: if the world changed so that the call is now denied or needs
// another approval, it fails with the reason instead of running. The
// outcome is stored on the approval and audited with the requester as actor
// and the approver in the reason. source is where the approval came from
// (UI, API, CLI).
func (g *Gate) Execute(ctx context.Context, a store.Approval, source string) (store.Approval, error) {
	queue := g.guard.queue
	a, err := queue.Begin(ctx, a)
	if err != nil {
		return store.Approval{}, err
	}
	start := g.now()
	ev := g.event(ctx, a.Tool, a.Args, start)
	ev.Source, ev.ApprovalID, ev.WorkspaceID = source, a.ID, a.WorkspaceID
	ev.ActorType, ev.ActorID, ev.ActorName, ev.KeyPrefix = a.RequesterKind, a.RequesterID, a.RequesterName, a.KeyPrefix
	outcome, written, runErr := g.runApproved(ctx, a, ev, start)
	ok := runErr == nil
	switch {
	case written:
		// The change and its event (executed) were committed together.
		g.metrics.observe(ev, ev.Tool)
		if !ok {
			outcome, ok = "executed; the result could not be recorded", true
		}
	case !ok:
		outcome = runErr.Error()
		ev.Decision, ev.Reason = store.DecisionFailed, guardrails.RedactString(outcome)
	default:
		ev.Decision = store.DecisionExecuted
		ev.Reason = "approved by " + a.DeciderName
	}
	if !written {
		if err := g.audit(context.WithoutCancel(ctx), ev, start); err != nil {
			outcome, ok = "the outcome could not be audited", false
		}
	}
	if len(outcome) > maxOutcome {
		outcome = outcome[:maxOutcome]
	}
	return queue.Finish(context.WithoutCancel(ctx), a, ok, outcome)
}

// runApproved re-checks and runs the pinned call. Its error text is what
// the approval's outcome says; it carries no internal detail. written
// reports that the call's change was committed with its audit event (see
// Gate): then ev is that event and must not be written again.
func (g *Gate) runApproved(ctx context.Context, a store.Approval, ev *store.AuditEvent, start time.Time) (string, bool, error) {
	t, ok := g.tools[a.Tool]
	if !ok {
		return "", false, fmt.Errorf("tool %s no longer exists", a.Tool)
	}
	ev.Action, ev.ResourceType = t.Permission, t.Resource
	k, err := g.store.KeyByPrefix(ctx, a.KeyPrefix)
	if err != nil {
		return "", false, errors.New("the requesting key no longer exists")
	}
	p, err := g.store.Principal(ctx, k.ID, g.now())
	if err != nil {
		return "", false, errors.New("the requesting key was revoked or expired, so the call did not run")
	}
	// CanDecide checked the approver against the pinned requester; check
	// again against the requester as it is now, so no path (a resumed
	// approval, a member changed since) lets a person approve their own
	// call or their own agent's.
	switch {
	case actsForNobody(p):
		return "", false, errors.New("the requesting agent key acts for no human, so the call did not run")
	case a.DeciderID == "" || a.DeciderID == p.MemberID || a.DeciderID == p.OwnerID:
		return "", false, errors.New("the approver is the requester or the human behind the requesting agent key, so the call did not run")
	}
	if t.Permission != "" {
		acc, err := g.rbac.Authorize(ctx, p, t.Permission)
		if err != nil {
			g.log.Error("authorize approved call", "approval", a.ID, "err", err)
			return "", false, errors.New("authorization could not be checked, so the call did not run")
		}
		if !acc.Allowed {
			return "", false, fmt.Errorf("the requester may no longer do this (%s), so the call did not run", acc.Reason)
		}
	}
	call := &tools.Call{Principal: p, Tool: t.Spec.Name}
	v, err := g.guard.decide(ctx, t, call, a.Source, a.Args, false)
	ev.Rules = v.Rules
	if err != nil {
		g.log.Error("guardrails for approved call", "approval", a.ID, "err", err)
	}
	switch v.Effect {
	case guardrails.EffectAllow:
	case guardrails.EffectRequireApproval:
		for _, r := range v.Rules {
			if !slices.Contains(a.Rules, r) {
				return "", false, fmt.Errorf("conditions changed since the request: %s now also applies, which this approval did not cover", r)
			}
		}
	default:
		return "", false, fmt.Errorf("conditions changed since the request: %s", v.Reason)
	}
	hctx := context.WithValue(ctx, callKey{}, call)
	var pending *store.PendingAudit
	if t.Write {
		ev.Reason = "approved by " + a.DeciderName
		hctx, pending = store.WithPendingAudit(hctx, ev, g.prepare(call, start))
	}
	res, err := g.Handler(t)(hctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: a.Tool, Arguments: a.Args}})
	written := pending.Written()
	if !written {
		ev.ResourceID, ev.Result = call.ResourceID, call.Summary
	}
	if err != nil {
		g.log.Error("approved call failed", "approval", a.ID, "request_id", ev.RequestID, "err", err)
		return "", written, errors.New(internalMessage(ev.RequestID))
	}
	if res.IsError {
		return "", written, errors.New(resultText(res))
	}
	data, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return "", written, errors.New(internalMessage(ev.RequestID))
	}
	return string(data), written, nil
}

// sweepInterval is how often pending approvals past their expiry expire.
const sweepInterval = time.Minute

// ExpireApprovals moves expired pending approvals of the workspaces to
// expired every minute until ctx ends.
func (s *Server) ExpireApprovals(ctx context.Context, workspaceIDs ...string) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		for _, ws := range workspaceIDs {
			if _, err := s.gate.guard.queue.Expire(ctx, ws); err != nil && ctx.Err() == nil {
				s.log.Error("expire approvals", "workspace", ws, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ResumeApproved runs approvals a stop left approved but not yet begun:
// they never started, so running them now is their one run (Begin still
// guarantees that). Run it at startup, after the queue's Recover.
func (s *Server) ResumeApproved(ctx context.Context, workspaceID string) (int, error) {
	list, err := s.store.ListApprovals(ctx, store.ApprovalFilter{WorkspaceID: workspaceID, State: store.ApprovalApproved, Limit: 1000})
	if err != nil {
		return 0, err
	}
	ran := 0
	for _, a := range list {
		if _, err := s.gate.Execute(ctx, a, store.SourceSystem); err != nil {
			if errors.Is(err, store.ErrConflict) {
				continue // someone else began it
			}
			return ran, fmt.Errorf("resume approval %s: %w", a.ID, err)
		}
		ran++
	}
	return ran, nil
}
