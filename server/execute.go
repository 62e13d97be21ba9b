package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/approvals"
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

// runApproved runs the pinned call through the gate's decision path
// (evaluate, for the requester as they are now) and, when it allows the
// call, through run, as a direct call would. Its error text is what the
// approval's outcome says; it carries no internal detail. written reports
// that the call's change was committed with its audit event (see Gate):
// then ev is that event and must not be written again.
func (g *Gate) runApproved(ctx context.Context, a store.Approval, ev *store.AuditEvent, start time.Time) (string, bool, error) {
	if t, ok := g.tools[a.Tool]; ok {
		ev.Action, ev.ResourceType = t.Permission, t.Resource
	}
	k, err := g.store.KeyByPrefix(ctx, a.KeyPrefix)
	if err != nil {
		return "", false, errors.New("the requesting key no longer exists")
	}
	p, err := g.store.Principal(ctx, k.ID, g.now())
	if err != nil {
		return "", false, errors.New("the requesting key was revoked or expired, so the call did not run")
	}
	o, err := g.evaluate(ctx, request{principal: p, source: a.Source, tool: a.Tool, args: a.Args, mode: modeApproved, approval: &a, requestID: ev.RequestID})
	if err != nil {
		g.log.Error("decide approved call", "approval", a.ID, "request_id", ev.RequestID, "err", err)
	}
	ev.Rules = o.verdict.Rules
	recordFacts(ev, o.verdict)
	if o.kind != allow {
		return "", false, errors.New(o.message)
	}
	if o.tool.Write {
		ev.Reason = "approved by " + a.DeciderName
	}
	req := mcp.CallToolRequest{Params: mcp.CallToolParams{Name: a.Tool, Arguments: a.Args}}
	res, written, err := g.run(ctx, o, ev, start, a.Pins, g.Handler(o.tool), req)
	if errors.Is(err, store.ErrPinChanged) {
		return "", written, errors.New("an object this call was approved for changed while it ran, so nothing was changed; ask again")
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

// checkPins fails an approval whose call would not act on the objects it
// pinned: every pinned object must still be there with the same name and
// version, and the tool's Resolve, run again on the pinned arguments, must
// pass its checks (a delete that dependents block now fails here) and
// find exactly the pinned objects. The error says what changed.
func (g *Gate) checkPins(ctx context.Context, t tools.Tool, call *tools.Call, a store.Approval) error {
	if t.Resolve == nil {
		if len(a.Pins) > 0 {
			return errors.New("the objects this call was approved for can no longer be checked, so it did not run; ask again")
		}
		return nil
	}
	for _, pin := range a.Pins {
		if why := g.pinChanged(ctx, a.WorkspaceID, pin); why != "" {
			return fmt.Errorf("the %s %q (%s) changed since it was approved (%s), so the call did not run; ask again",
				pin.Type, guardrails.RedactString(pin.Name), pin.ID, why)
		}
	}
	res, err := t.Resolve(ctx, call, a.Args)
	if te, ok := tools.AsError(err); ok {
		return fmt.Errorf("the call cannot run any more, so it did not run: %s", te.Msg)
	}
	if err != nil {
		g.log.Error("resolve approved call", "approval", a.ID, "err", err)
		return errors.New("the objects of the call could not be checked, so it did not run; try again later")
	}
	canon, _, err := approvals.Canonical(res.Args)
	if err != nil || !bytes.Equal(canon, a.Args) || !slices.Equal(res.Pins, a.Pins) {
		return errors.New("the call no longer names the objects it was approved for, so it did not run; ask again")
	}
	return nil
}

// pinChanged says how a pinned object differs from the stored one now, or
// "" when it does not.
func (g *Gate) pinChanged(ctx context.Context, workspaceID string, pin store.ApprovalPin) string {
	var id, name string
	var version int
	var err error
	switch pin.Type {
	case "model":
		var m store.Model
		m, err = g.store.GetModel(ctx, workspaceID, pin.ID)
		id, name, version = m.ID, m.Name, m.Version
	case "audience":
		var au store.Audience
		au, err = g.store.GetAudience(ctx, workspaceID, pin.ID)
		id, name, version = au.ID, au.Name, au.Version
	default:
		return "it is of a kind that cannot be checked"
	}
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && id != pin.ID:
		return "it no longer exists"
	case err != nil:
		return "it could not be read"
	case name != pin.Name:
		return fmt.Sprintf("renamed to %q", guardrails.RedactString(name))
	case version != pin.Version:
		return fmt.Sprintf("version %d then, %d now", pin.Version, version)
	}
	return ""
}

// checkFacts fails an approval whose facts moved across a threshold of an
// active policy since the human reviewed them (guardrails.Engine.Crossed),
// naming the facts that changed.
func (g *Gate) checkFacts(ctx context.Context, t tools.Tool, call *tools.Call, a store.Approval, view json.RawMessage, now map[string]any) error {
	in := guardrails.Input{Principal: call.Principal, Source: a.Source, Tool: t.Spec.Name, Resource: t.Resource, Operation: t.Operation(), Facts: now}
	_ = json.Unmarshal(view, &in.Args)
	crossed, err := g.guard.engine.Crossed(ctx, in, a.Facts)
	if err != nil {
		g.log.Error("compare facts of approved call", "approval", a.ID, "err", err)
		return errors.New("the facts of the call could not be compared with those approved, so it did not run; ask again")
	}
	if len(crossed) == 0 {
		return nil
	}
	return fmt.Errorf("the facts changed since it was approved (%s), across the threshold of %s, so the call did not run; ask again",
		factChanges(a.Facts, now), strings.Join(crossed, ", "))
}

// policyView returns pinned arguments as the policies see them: every
// pinned model's id back as its name, the name the pin checks have just
// confirmed, so conditions written against model names (args.model ==
// "customers") decide an approved call as they decided its request. Ids
// are unique random strings, so a string equal to one names that model.
func policyView(args json.RawMessage, pins []store.ApprovalPin) json.RawMessage {
	names := map[string]string{}
	for _, p := range pins {
		if p.Type == "model" {
			names[p.ID] = p.Name
		}
	}
	return renameIDs(args, names)
}

// namedView returns a call's arguments as the policies see them: every
// string with the form of a model id that names a model of the workspace
// replaced by that model's name, so a condition written against a name
// (args.model == "orders") decides the same whichever of the two forms
// the agent wrote. No model may be named like an id, so the swap cannot
// make one model pass for another. An error other than an unknown model
// is returned: the caller denies.
func (g *Gate) namedView(ctx context.Context, workspaceID string, args json.RawMessage) (json.RawMessage, error) {
	if !bytes.Contains(args, []byte(store.ModelIDPrefix)) {
		return args, nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return args, nil
	}
	names := map[string]string{}
	var collect func(any)
	collect = func(v any) {
		switch v := v.(type) {
		case string:
			if store.IsModelID(v) {
				names[v] = ""
			}
		case []any:
			for _, e := range v {
				collect(e)
			}
		case map[string]any:
			for _, e := range v {
				collect(e)
			}
		}
	}
	collect(v)
	for id := range names {
		m, err := g.store.GetModel(ctx, workspaceID, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			delete(names, id)
		case err != nil:
			return nil, fmt.Errorf("name model %s for the policies: %w", id, err)
		default:
			names[id] = m.Name
		}
	}
	return renameIDs(args, names), nil
}

// renameIDs returns args with every string that is a key of names (at any
// depth) replaced by its value; args as they are when names is empty or
// they are not JSON.
func renameIDs(args json.RawMessage, names map[string]string) json.RawMessage {
	if len(names) == 0 {
		return args
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return args
	}
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case string:
			if n, ok := names[v]; ok {
				return n
			}
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = walk(v[k])
			}
		}
		return v
	}
	out, err := json.Marshal(walk(v))
	if err != nil {
		return args
	}
	return out
}

// factChanges lists the facts whose value differs between then and now,
// with both values when they are numbers or short words.
func factChanges(then, now map[string]any) string {
	var names []string
	for k := range now {
		names = append(names, k)
	}
	for k := range then {
		if _, ok := now[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var parts []string
	for _, k := range names {
		was, is := factText(then[k]), factText(now[k])
		if was == is {
			continue
		}
		if len(was) > 40 || len(is) > 40 {
			parts = append(parts, k)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s was %s, now %s", k, was, is))
	}
	if len(parts) == 0 {
		return "no single fact stands out"
	}
	return strings.Join(parts, "; ")
}

// factText renders a fact value: a whole number without an exponent
// whether it was computed now or read back from an approval's JSON.
func factText(v any) string {
	if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10)
	}
	return fmt.Sprint(v)
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
