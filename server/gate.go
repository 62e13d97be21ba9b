package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/tools"
)

// Gate is the one place every tool call passes, direct or approved, and
// what check_action asks: evaluate decides each one on one path
// (identity, RBAC, the warehouse bound to the caller, pins, facts, the kill
// switch, the policies, approval) and run runs what it allows. Tools
// declare what they need; they never call the gate's parts themselves.
//
// Audit: every call is one event. A read, a denial or a failure is written
// (and on disk) before the caller gets the result. A call to a tool that
// writes carries its event into the handler as a pending audit event
// (store.WithPendingAudit): the store records it, decision executed, in the
// same transaction as the state change, so a change is never committed
// without its record nor a record without its change. If the handler
// commits nothing (it failed, or changed nothing), the gate writes the
// event afterwards as for a read.
type Gate struct {
	auth  *Authenticator
	rbac  *guardrails.RBAC
	store GateStore
	tools map[string]tools.Tool
	// warehouses binds the warehouse to each call's caller; without it a
	// tool's queries are refused.
	warehouses *tools.Warehouses
	guard      *guard
	log        *slog.Logger
	now        func() time.Time
	metrics    *metrics
}

// GateStore is what the gate reads and records in the store itself: an
// approved call's requester (Principals), the catalog objects an approval
// pins or its page shows (store.Catalog), and the audit events of calls
// that commit no change of their own (store.AuditAppender). The rest of its
// store work is done by the parts it holds (the Authenticator, RBAC, the
// guard, the tools).
type GateStore interface {
	Principals
	store.AuditAppender
	GetModel(ctx context.Context, workspaceID, idOrName string) (store.Model, error)
	GetAudience(ctx context.Context, workspaceID, id string) (store.Audience, error)
	GetDestination(ctx context.Context, workspaceID, id string) (store.Destination, error)
	GetSync(ctx context.Context, workspaceID, id string) (store.Sync, error)
}

// NewGate returns the gate for the given tools.
func NewGate(auth *Authenticator, rbac *guardrails.RBAC, s GateStore, all []tools.Tool, log *slog.Logger) *Gate {
	byName := make(map[string]tools.Tool, len(all))
	for _, t := range all {
		byName[t.Spec.Name] = t
	}
	return &Gate{auth: auth, rbac: rbac, store: s, tools: byName, log: log, now: time.Now}
}

// credential is what a transport learned about the caller of one request:
// an authenticated principal (HTTP authenticates before MCP runs) or the raw
// key to authenticate per call (stdio, whose key comes from the environment).
type credential struct {
	principal *store.Principal
	key       string
}

type credentialKey struct{}

// withPrincipal records an authenticated caller in ctx.
func withPrincipal(ctx context.Context, p store.Principal) context.Context {
	return context.WithValue(ctx, credentialKey{}, credential{principal: &p})
}

// withKey records a raw API key in ctx, to be checked on every call.
func withKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, credentialKey{}, credential{key: key})
}

// principal authenticates the caller of ctx.
func (g *Gate) principal(ctx context.Context) (store.Principal, error) {
	c, _ := ctx.Value(credentialKey{}).(credential)
	if c.principal != nil {
		return *c.principal, nil
	}
	return g.auth.Authenticate(ctx, c.key)
}

type callKey struct{}

// Middleware is the gate as an mcp-go tool middleware: it authenticates
// the caller, decides the call (evaluate) and answers as decided: it runs
// the tool (run), queues the call for a human, or refuses it, and audits
// each outcome. It must be the outermost middleware so nothing runs before
// authentication.
func (g *Gate) Middleware(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		ctx = store.WithCallScope(ctx) // the store reads its versions once per call
		start := g.now()
		t, known := g.tools[req.Params.Name]
		ev := g.event(ctx, req.Params.Name, req.GetRawArguments(), start)
		if t.Permission != "" {
			ev.Action = t.Permission
		}
		ev.ResourceType = t.Resource
		if !known {
			// Registered with mcp-go but not through the gate: never run it.
			return g.deny(ctx, ev, start, "tool is not served by this gate", "Unknown tool: call tools/list to see the tools you may use."), nil
		}
		p, err := g.principal(ctx)
		if err != nil {
			return g.authFailed(ctx, ev, start, err), nil
		}
		setActor(ev, p)
		o, err := g.evaluate(ctx, request{principal: p, source: store.SourceAI, tool: t.Spec.Name, args: rawArgs(req), mode: modeCall, requestID: ev.RequestID})
		if err != nil {
			g.log.Error("decide call", "request_id", ev.RequestID, "tool", ev.Tool, "err", err)
		}
		ev.Rules = o.verdict.Rules
		recordFacts(ev, o.verdict)
		switch o.kind {
		case allow:
		case queue:
			return g.queue(ctx, ev, start, o), nil
		case cannotRun:
			// Refused before a human saw it; the message says why.
			ev.ResourceID = o.call.ResourceID
			return g.failed(ctx, ev, start, o.message), nil
		case badArgument:
			// The model should fix the call; nothing of it ran.
			return g.failed(ctx, ev, start, o.message), nil
		default:
			return g.deny(ctx, ev, start, o.reason, o.message), nil
		}
		res, written, err := g.run(ctx, o, ev, start, nil, next, req)
		if written {
			// The event was committed with the change, as executed.
			g.metrics.observe(ev, ev.Tool)
			if err != nil {
				g.log.Error("tool failed after its change was committed", "request_id", ev.RequestID, "tool", ev.Tool, "err", err)
				return mcp.NewToolResultError(internalMessage(ev.RequestID)), nil
			}
			return res, nil
		}
		switch {
		case err != nil:
			g.log.Error("tool failed", "request_id", ev.RequestID, "tool", ev.Tool, "err", err)
			ev.Decision, ev.Reason = store.DecisionFailed, "internal error"
			res = mcp.NewToolResultError(internalMessage(ev.RequestID))
		case res.IsError:
			ev.Decision, ev.Reason = store.DecisionFailed, guardrails.RedactString(resultText(res))
		default:
			ev.Decision = store.DecisionAllowed
		}
		if err := g.audit(ctx, ev, start); err != nil {
			// The outcome could not be recorded: do not hand it out.
			return mcp.NewToolResultError(internalMessage(ev.RequestID)), nil
		}
		return res, nil
	}
}

// mode is the entry point a call reaches the decision path from.
type mode int

const (
	// modeCall is a call an agent makes now (Middleware): rate limits
	// count, and a call the policies send to a human is resolved and
	// pinned for the queue.
	modeCall mode = iota
	// modeApproved is a call a human approved (Execute): the requester
	// and the approver are checked again, every pin must hold, and only
	// the require_approval rules the approval covers may fire.
	modeApproved
	// modeDryRun is check_action (Check): nothing is counted or queued.
	modeDryRun
)

// say picks the words of a refusal for the entry point: what the model
// reads for a call, the outcome an approval records, what check_action
// reports.
func (m mode) say(call, approved, dry string) string {
	switch m {
	case modeApproved:
		return approved
	case modeDryRun:
		return dry
	}
	return call
}

// request is one call to decide.
type request struct {
	principal store.Principal
	source    string
	tool      string
	args      json.RawMessage
	mode      mode
	// approval is what a human approved (modeApproved only).
	approval *store.Approval
	// requestID ties internal failures in messages to the log.
	requestID string
}

// kind is what the decision path decided for a call.
type kind int

const (
	// allow: run the tool.
	allow kind = iota
	// forbidden: the caller may not make the call (identity, RBAC).
	forbidden
	// deny: the guardrails refuse it, or (approved) no longer allow it.
	deny
	// queue: a human must approve it; the outcome holds what to pin.
	queue
	// cannotRun: refused before any human sees it: what it names is
	// missing, blocked or changed.
	cannotRun
	// badArgument: an argument the model must fix (or an unknown tool).
	badArgument
)

// outcome is what the decision path decided, with what it learned.
type outcome struct {
	kind kind
	tool tools.Tool
	// call is the call as the handler sees it: the principal, the
	// warehouse bound to it, the facts. nil before RBAC allowed the call.
	call *tools.Call
	// verdict is the guardrails' decision with its rules and facts (a
	// deny when they did not decide).
	verdict verdict
	// reason is the audit reason; message is what the caller reads (see
	// mode.say); suggestions are check_action's for a forbidden call.
	reason, message string
	suggestions     []string
	// For queue: the arguments with objects named by id, the facts
	// decided on them and the objects with their versions the approval
	// pins.
	args  json.RawMessage
	facts map[string]any
	pins  []store.ApprovalPin
}

// evaluate is the one decision path of every call, whatever its entry
// point (Middleware, Execute, Check): the tool, the caller's identity,
// RBAC, the warehouse bound to the caller, for an approved call its pins,
// then the guardrails (the tool's facts, the kill switch, the policies) and
// what their effect means for the mode. A call evaluate allows then runs
// through run. An error is an internal failure, logged by the caller
// (check_action returns it): the outcome beside it refuses the call (fail
// closed).
func (g *Gate) evaluate(ctx context.Context, r request) (outcome, error) {
	o := outcome{kind: deny, verdict: undecided()}
	t, ok := g.tools[r.tool]
	if !ok {
		o.kind = badArgument
		o.message = r.mode.say("Unknown tool: call tools/list to see the tools you may use.",
			fmt.Sprintf("tool %s no longer exists", guardrails.RedactString(r.tool)),
			fmt.Sprintf("unknown tool %q: call tools/list to see the tools you may use", guardrails.RedactString(r.tool)))
		o.reason = guardrails.RedactString(o.message)
		return o, nil
	}
	o.tool = t
	p := r.principal

	// Identity: an agent acts for a human; an approver is neither the
	// requester nor the human behind it, checked against the requester as
	// it is now, so no path (a resumed approval, a member changed since)
	// lets a person approve their own call or their own agent's.
	if actsForNobody(p) {
		o.kind, o.reason = forbidden, "agent key acts for no human"
		o.message = r.mode.say(ownerlessMessage, "the requesting agent key acts for no human, so the call did not run", ownerlessMessage)
		return o, nil
	}
	if a := r.approval; r.mode == modeApproved && (a.DeciderID == "" || a.DeciderID == p.MemberID || a.DeciderID == p.OwnerID) {
		o.kind, o.reason = forbidden, "the approver is the requester or the human behind the requesting agent key"
		o.message = o.reason + ", so the call did not run"
		return o, nil
	}

	// RBAC: the tool's permission, for the caller (and an agent's human).
	if t.Permission != "" {
		dec, err := g.rbac.Authorize(ctx, p, t.Permission)
		if err != nil {
			// Fail closed: no decision is a denial.
			o.kind, o.reason = forbidden, "authorization failed: "+err.Error()
			o.message = r.mode.say(internalMessage(r.requestID), "authorization could not be checked, so the call did not run", "")
			return o, fmt.Errorf("authorize: %w", err)
		}
		if !dec.Allowed {
			o.kind, o.reason = forbidden, dec.Reason
			o.message = r.mode.say(
				fmt.Sprintf("Permission denied: %s. Ask a workspace admin for a role with %q, or use a tool your role permits (tools/list shows them).", dec.Reason, t.Permission),
				fmt.Sprintf("the requester may no longer do this (%s), so the call did not run", dec.Reason), dec.Reason)
			o.suggestions = []string{fmt.Sprintf("ask a workspace admin for a role with %q", t.Permission)}
			return o, nil
		}
	}

	// From here on the tool may run for the caller: it gets the warehouse
	// bound to them (access filters, limits, concurrency caps, masking).
	o.call = &tools.Call{Principal: p, Tool: t.Spec.Name, Warehouse: g.warehouses.Bind(p)}

	// An approved call acts on exactly the objects the human reviewed.
	raw := r.args
	var view json.RawMessage
	if r.mode == modeApproved {
		if err := g.checkPins(ctx, t, o.call, *r.approval); err != nil {
			o.kind, o.message = cannotRun, err.Error()
			o.reason = guardrails.RedactString(o.message)
			return o, nil
		}
		view = policyView(r.approval.Args, r.approval.Pins)
	} else {
		named, err := g.namedView(ctx, p.WorkspaceID, r.args)
		if err != nil {
			o.kind, o.reason = deny, "policy arguments could not be read: "+err.Error()
			o.message = r.mode.say(internalMessage(r.requestID), "the policies could not be checked, so the call did not run", "")
			return o, err
		}
		view = named
	}

	// Guardrails: facts, the kill switch, the policies.
	v, err := g.guardrails(ctx, t, o.call, r.source, raw, view, r.mode == modeDryRun)
	o.verdict = v
	if te, ok := tools.AsError(err); ok {
		o.kind = badArgument
		o.message = r.mode.say(te.Msg, "the call cannot run any more, so it did not run: "+te.Msg,
			fmt.Sprintf("the arguments for %s are not valid: %s", t.Spec.Name, te.Msg))
		o.reason = guardrails.RedactString(o.message)
		return o, nil
	}
	if err != nil {
		o.kind, o.reason = deny, policyReason(v)
		o.message = r.mode.say(deniedMessage(v), "conditions changed since the request: "+v.Reason, "")
		return o, fmt.Errorf("guardrails: %w", err)
	}
	switch v.Effect {
	case guardrails.EffectAllow:
	case guardrails.EffectRequireApproval:
		if r.mode == modeApproved {
			// The approval covers the rules it was created for, no other.
			for _, rule := range v.Rules {
				if !slices.Contains(r.approval.Rules, rule) {
					return g.refused(ctx, r, o, deny, fmt.Sprintf("conditions changed since the request: %s now also applies, which this approval did not cover", rule)), nil
				}
			}
			break
		}
		// A call that cannot run is refused, never queued; one that can is
		// pinned as Resolve found it.
		return g.pin(ctx, r, o)
	default:
		o.kind, o.reason = deny, policyReason(v)
		o.message = r.mode.say(deniedMessage(v), "conditions changed since the request: "+v.Reason, v.Reason)
		return o, nil
	}

	// An approved call runs only while the facts stay on the side of every
	// threshold the human saw them on.
	if r.mode == modeApproved {
		if err := g.checkFacts(ctx, t, o.call, *r.approval, view, v.Facts); err != nil {
			return g.refused(ctx, r, o, cannotRun, err.Error()), nil
		}
	}
	o.kind = allow
	return o, nil
}

// guardrails computes the call's facts (with the caller's bound
// warehouse), reads the kill switch for an AI call that writes, and
// decides the call with the active policies, which see the arguments as
// view while the tool computes its facts from raw: an approval's pinned
// arguments name objects by id, but its policies were written for, and
// decided on, the names the agent gave. With dry set nothing is counted.
// A *tools.Error from the facts is a bad argument the caller should fix;
// any other error is returned beside a deny verdict (fail closed).
func (g *Gate) guardrails(ctx context.Context, t tools.Tool, call *tools.Call, source string, raw, view json.RawMessage, dry bool) (verdict, error) {
	v := undecided()
	gd := g.guard
	if gd == nil || gd.engine == nil {
		return v, errors.New("no guardrail engine configured")
	}
	if err := gd.policies.follow(ctx, call.Principal.WorkspaceID); err != nil {
		return v, err
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

// refused turns o into a refusal of kind k with message, after the
// guardrails decided: the call does not go on, so it gives back the
// rate-limit uses they counted.
func (g *Gate) refused(ctx context.Context, r request, o outcome, k kind, message string) outcome {
	g.guard.refund(ctx, &o.verdict, r.requestID)
	o.kind, o.message, o.reason = k, message, guardrails.RedactString(message)
	return o
}

// pin resolves what a call the policies send to a human names
// (tools.Tool.Resolve): the arguments with objects named by id, the facts
// and the objects with their versions an approval pins. For a call, the
// facts are decided again on those arguments (the policies still see the
// arguments the agent gave, models by name: namedView), so what the human reviews is about the objects
// that will run. A call Resolve refuses cannot run (a dry run says so), and
// neither can one whose decision changed in between; either gives its
// rate-limit uses back.
func (g *Gate) pin(ctx context.Context, r request, o outcome) (outcome, error) {
	t, v := o.tool, o.verdict
	if t.Resolve == nil {
		o.kind, o.args, o.facts = queue, r.args, v.Facts
		return o, nil
	}
	const notQueued = "This call cannot run, so it was not queued for approval: "
	res, err := t.Resolve(ctx, o.call, r.args)
	if te, ok := tools.AsError(err); ok {
		return g.refused(ctx, r, o, cannotRun, r.mode.say(notQueued+te.Msg, "", te.Msg)), nil
	}
	if err != nil {
		return g.refused(ctx, r, o, cannotRun, internalMessage(r.requestID)), fmt.Errorf("resolve call to queue: %w", err)
	}
	if r.mode == modeDryRun {
		o.kind = queue
		return o, nil
	}
	pinned := &tools.Call{Principal: o.call.Principal, Tool: o.call.Tool, Warehouse: o.call.Warehouse}
	view, err := g.namedView(ctx, o.call.Principal.WorkspaceID, r.args)
	if err != nil {
		return g.refused(ctx, r, o, cannotRun, internalMessage(r.requestID)), err
	}
	again, err := g.guardrails(ctx, t, pinned, r.source, res.Args, view, true)
	if te, ok := tools.AsError(err); ok {
		return g.refused(ctx, r, o, cannotRun, notQueued+te.Msg), nil
	}
	if err != nil {
		return g.refused(ctx, r, o, cannotRun, internalMessage(r.requestID)), fmt.Errorf("guardrails of call to queue: %w", err)
	}
	if again.Effect != v.Effect || !slices.Equal(again.Rules, v.Rules) {
		return g.refused(ctx, r, o, cannotRun, "The objects this call names changed while it was checked, so it was not queued for approval: look at them again (list_models, list_audiences) and repeat the call if it is still what you want."), nil
	}
	o.kind, o.args, o.facts, o.pins = queue, res.Args, again.Facts, res.Pins
	return o, nil
}

// run runs a call evaluate allowed, through next (the handler behind the
// rest of the middleware). A tool that writes carries ev into the store as
// a pending audit event (store.WithPendingAudit), recorded with the change,
// as executed; an approved call's pins are checked again in the write's
// own transaction (store.WithPins), so a change racing the call cannot
// slip in after the checks. A call that changed nothing and failed gives
// its rate-limit uses back. written reports that ev was committed with the
// change: then it must not be written again; otherwise ev has the call's
// resource id and summary, and the caller records the outcome.
func (g *Gate) run(ctx context.Context, o outcome, ev *store.AuditEvent, start time.Time, pins []store.ApprovalPin, next mcpserver.ToolHandlerFunc, req mcp.CallToolRequest) (*mcp.CallToolResult, bool, error) {
	hctx := context.WithValue(ctx, callKey{}, o.call)
	var pending *store.PendingAudit
	if o.tool.Write {
		hctx, pending = store.WithPendingAudit(hctx, ev, g.prepare(o.call, start))
		hctx = store.WithPins(hctx, pins)
	}
	res, err := next(hctx, req)
	written := pending.Written()
	if !written {
		ev.ResourceID, ev.Result = o.call.ResourceID, o.call.Summary
		if err != nil || res.IsError {
			// Refused by the tool or failed before changing anything: the
			// call does not use up a rate limit.
			g.guard.refund(ctx, &o.verdict, ev.RequestID)
		}
	}
	return res, written, err
}

// Handler adapts a tool to mcp-go. It runs only inside the gate's
// middleware: without the gate's call record it refuses to run.
func (g *Gate) Handler(t tools.Tool) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		call, ok := ctx.Value(callKey{}).(*tools.Call)
		if !ok {
			return nil, errors.New("tool called outside the gate")
		}
		out, err := t.Handler(ctx, call, rawArgs(req))
		if err != nil {
			if te, ok := tools.AsError(err); ok {
				return mcp.NewToolResultError(te.Msg), nil
			}
			return nil, err
		}
		data, err := json.Marshal(out.Data)
		if err != nil {
			return nil, fmt.Errorf("encode %s result: %w", t.Spec.Name, err)
		}
		return &mcp.CallToolResult{
			Content: []mcp.Content{
				mcp.NewTextContent(out.Text),
				mcp.NewTextContent(string(data)),
			},
			StructuredContent: json.RawMessage(data),
		}, nil
	}
}

// rawArgs returns the call's arguments as JSON. Arguments that cannot be
// encoded become null, which every tool refuses as not an object.
func rawArgs(req mcp.CallToolRequest) json.RawMessage {
	raw, err := json.Marshal(req.GetRawArguments())
	if err != nil {
		return json.RawMessage("null")
	}
	return raw
}

// queue records a call the guardrails sent to a human (o, as pin left
// it) and tells the agent where it stands. Nothing of the call runs now.
func (g *Gate) queue(ctx context.Context, ev *store.AuditEvent, start time.Time, o outcome) *mcp.CallToolResult {
	ev.ResourceID = o.call.ResourceID
	v := o.verdict
	a, err := g.guard.queue.Request(ctx, o.call.Principal, store.SourceAI, o.tool.Spec.Name, o.args, v.Decision, o.facts, o.pins...)
	if errors.Is(err, approvals.ErrArgsRefused) {
		g.guard.refund(ctx, &v, ev.RequestID)
		return g.deny(ctx, ev, start, err.Error(), "This call needs a human's approval and was not queued: "+err.Error()+".")
	}
	if err != nil {
		g.log.Error("queue approval", "request_id", ev.RequestID, "tool", ev.Tool, "err", err)
		g.guard.refund(ctx, &v, ev.RequestID)
		return g.deny(ctx, ev, start, "the approval request could not be recorded", internalMessage(ev.RequestID))
	}
	ev.Decision, ev.Reason, ev.ApprovalID = store.DecisionApprovalRequired, policyReason(v), a.ID
	if err := g.audit(ctx, ev, start); err != nil {
		return mcp.NewToolResultError(internalMessage(ev.RequestID))
	}
	q := queued{
		ApprovalID: a.ID,
		State:      a.State,
		URL:        g.guard.approvalURL(a.ID),
		ExpiresAt:  a.ExpiresAt.UTC().Format(time.RFC3339),
		Rules:      v.Rules,
		Reason:     v.Reason,
		Message: fmt.Sprintf("This call needs a human's approval (%s) and has not run. Tell the user it waits at %s "+
			"(approval %s, expires %s); poll get_approval for the outcome instead of calling it again.",
			v.Reason, g.guard.approvalURL(a.ID), a.ID, a.ExpiresAt.UTC().Format(time.RFC3339)),
	}
	data, err := json.Marshal(q)
	if err != nil {
		return mcp.NewToolResultError(internalMessage(ev.RequestID))
	}
	return &mcp.CallToolResult{
		Content:           []mcp.Content{mcp.NewTextContent(q.Message), mcp.NewTextContent(string(data))},
		StructuredContent: json.RawMessage(data),
	}
}

// policyReason is the audit reason of a guardrail decision: the reason and
// the version of the policy set that made it.
func policyReason(v verdict) string {
	return v.Reason + " [policy set " + v.PolicyVersion + "]"
}

// FilterList is an mcp-go after-list-tools hook: it leaves in a tools/list
// result only the tools the caller's role permits. A caller who cannot be
// authenticated or authorized, or an agent with no human behind it, sees
// no tools (fail closed).
func (g *Gate) FilterList(ctx context.Context, _ any, _ *mcp.ListToolsRequest, result *mcp.ListToolsResult) {
	if result == nil {
		return
	}
	p, err := g.principal(ctx)
	var permitted map[string]bool
	if err == nil {
		permitted, err = g.rbac.Permitted(ctx, p)
	}
	if err != nil || actsForNobody(p) {
		result.Tools = []mcp.Tool{}
		return
	}
	kept := make([]mcp.Tool, 0, len(result.Tools))
	for _, spec := range result.Tools {
		t, ok := g.tools[spec.Name]
		if ok && (t.Permission == "" || permitted[t.Permission]) {
			kept = append(kept, spec)
		}
	}
	result.Tools = kept
}

// AuditUnknownTool is an mcp-go error hook: a tools/call for a tool that
// does not exist is recorded like any other denied call.
func (g *Gate) AuditUnknownTool(ctx context.Context, _ any, method mcp.MCPMethod, message any, err error) {
	if method != mcp.MethodToolsCall || !errors.Is(err, mcpserver.ErrToolNotFound) {
		return
	}
	req, ok := message.(*mcp.CallToolRequest)
	if !ok {
		return
	}
	start := g.now()
	ev := g.event(ctx, req.Params.Name, req.GetRawArguments(), start)
	p, authErr := g.principal(ctx)
	if authErr != nil {
		g.authFailed(ctx, ev, start, authErr)
		return
	}
	setActor(ev, p)
	g.deny(ctx, ev, start, "unknown tool", "")
}

// event starts the audit event of one call. Its action is the MCP method
// until the gate knows the tool's permission.
// Its fields are bounded and redacted from the start (the store does it
// again), so log lines that name the tool are too.
func (g *Gate) event(ctx context.Context, tool string, args any, start time.Time) *store.AuditEvent {
	ev := store.BoundAudit(store.AuditEvent{
		At:        start.UTC(),
		Action:    string(mcp.MethodToolsCall),
		Source:    store.SourceAI,
		Tool:      tool,
		Args:      guardrails.Redact(args),
		Client:    clientName(ctx),
		SessionID: sessionID(ctx),
		RequestID: newRequestID(),
	})
	// Only the gate records facts (recordFacts), never the caller.
	ev.Args = store.WithAuditFacts(ev.Args, nil)
	return &ev
}

// authFailed records a failed authentication and returns the result the
// caller sees, which names no reason.
func (g *Gate) authFailed(ctx context.Context, ev *store.AuditEvent, start time.Time, err error) *mcp.CallToolResult {
	g.noteAuthFailure(ev, err)
	return g.deny(ctx, ev, start, ev.Reason, "Authentication failed: "+ErrUnauthenticated.Error()+". Ask the person who set you up for a valid SignalSmith API key.")
}

// noteAuthFailure fills in the audit event of a failed authentication: no
// actor, the presented key's prefix when it had one, and the reason.
func (g *Gate) noteAuthFailure(ev *store.AuditEvent, err error) {
	ev.ActorType = "unknown"
	ev.Action = "authenticate"
	ev.Reason = "authentication failed"
	var f *AuthFailure
	if errors.As(err, &f) {
		ev.KeyPrefix, ev.Reason = f.Prefix, f.Reason
	} else {
		g.log.Error("authenticate", "request_id", ev.RequestID, "err", err)
	}
}

// failed records a call refused before it ran (an argument to fix, a call
// that cannot run) and returns msg, which is what the model should act on.
func (g *Gate) failed(ctx context.Context, ev *store.AuditEvent, start time.Time, msg string) *mcp.CallToolResult {
	ev.Decision, ev.Reason = store.DecisionFailed, guardrails.RedactString(msg)
	if err := g.audit(ctx, ev, start); err != nil {
		return mcp.NewToolResultError(internalMessage(ev.RequestID))
	}
	return mcp.NewToolResultError(msg)
}

// deny records a denied call and returns msg as an error result.
func (g *Gate) deny(ctx context.Context, ev *store.AuditEvent, start time.Time, reason, msg string) *mcp.CallToolResult {
	ev.Decision, ev.Reason = store.DecisionDenied, reason
	if err := g.audit(ctx, ev, start); err != nil {
		return mcp.NewToolResultError(internalMessage(ev.RequestID))
	}
	return mcp.NewToolResultError(msg)
}

// audit writes ev durably. It runs on a context that is not cancelled with
// the request, so a client hanging up cannot leave a call unrecorded.
func (g *Gate) audit(ctx context.Context, ev *store.AuditEvent, start time.Time) error {
	ev.LatencyMS = latencyMS(g.now().Sub(start))
	if err := g.store.AppendAudit(context.WithoutCancel(ctx), *ev); err != nil {
		g.log.Error("audit write failed", "request_id", ev.RequestID, "tool", ev.Tool, "err", err)
		return err
	}
	tool := ""
	if _, ok := g.tools[ev.Tool]; ok {
		tool = ev.Tool
	}
	g.metrics.observe(ev, tool)
	return nil
}

// prepare returns the function that completes a pending audit event when
// the store records it with the change: what the handler said of the call
// so far and the latency until then.
func (g *Gate) prepare(call *tools.Call, start time.Time) func(*store.AuditEvent) {
	return func(e *store.AuditEvent) {
		if call.ResourceID != "" {
			e.ResourceID = call.ResourceID
		}
		if call.Summary != "" {
			e.Result = call.Summary
		}
		e.LatencyMS = latencyMS(g.now().Sub(start))
	}
}

// latencyMS is a duration in milliseconds with microsecond precision.
func latencyMS(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// setActor records the authenticated caller in ev.
func setActor(ev *store.AuditEvent, p store.Principal) {
	ev.WorkspaceID = p.WorkspaceID
	ev.ActorType = p.Kind
	ev.ActorID = p.MemberID
	ev.ActorName = p.MemberName
	ev.KeyPrefix = p.KeyPrefix
}

// internalMessage is all a caller learns of an internal failure.
func internalMessage(requestID string) string {
	return "Internal error (request id " + requestID + "). Try again later; if it persists, give the request id to a workspace admin."
}

// resultText returns the text of an error result, for the audit reason.
func resultText(res *mcp.CallToolResult) string {
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			return tc.Text
		}
	}
	return ""
}

// clientName returns "name/version" of the MCP client, when it said.
func clientName(ctx context.Context) string {
	var info mcp.Implementation
	if pi := mcpserver.RequestProtocolInfoFromContext(ctx); pi != nil && pi.ClientInfo != nil {
		info = *pi.ClientInfo
	} else if s, ok := mcpserver.ClientSessionFromContext(ctx).(mcpserver.SessionWithClientInfo); ok {
		info = s.GetClientInfo()
	}
	if info.Name == "" {
		return ""
	}
	if info.Version == "" {
		return info.Name
	}
	return info.Name + "/" + info.Version
}

// sessionID returns the MCP session id, when the transport has sessions.
func sessionID(ctx context.Context) string {
	if s := mcpserver.ClientSessionFromContext(ctx); s != nil {
		return s.SessionID()
	}
	return ""
}

// newRequestID returns a random id that ties a caller's error to log lines.
func newRequestID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "req_" + keyEncoding.EncodeToString(b)
}
