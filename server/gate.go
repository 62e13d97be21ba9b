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

// Gate is the one place every tool call passes: authenticate, authorize,
// run, audit. Tools declare what they need; they never call the gate's
// parts themselves.
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
	auth    *Authenticator
	rbac    *guardrails.RBAC
	store   store.Store
	tools   map[string]tools.Tool
	guard   *guard
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
}

// NewGate returns the gate for the given tools.
func NewGate(auth *Authenticator, rbac *guardrails.RBAC, s store.Store, all []tools.Tool, log *slog.Logger) *Gate {
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

// Middleware is the gate as an mcp-go tool middleware. It must be the
// outermost middleware so nothing runs before authentication.
func (g *Gate) Middleware(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
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
		if actsForNobody(p) {
			return g.deny(ctx, ev, start, "agent key acts for no human", ownerlessMessage), nil
		}
		if t.Permission != "" {
			dec, err := g.rbac.Authorize(ctx, p, t.Permission)
			if err != nil {
				// Fail closed: no decision is a denial.
				g.log.Error("authorize", "request_id", ev.RequestID, "tool", ev.Tool, "err", err)
				return g.deny(ctx, ev, start, "authorization failed: "+err.Error(), internalMessage(ev.RequestID)), nil
			}
			if !dec.Allowed {
				msg := fmt.Sprintf("Permission denied: %s. Ask a workspace admin for a role with %q, or use a tool your role permits (tools/list shows them).", dec.Reason, t.Permission)
				return g.deny(ctx, ev, start, dec.Reason, msg), nil
			}
		}
		call := &tools.Call{Principal: p, Tool: t.Spec.Name}
		raw := rawArgs(req)
		v, err := g.guard.decide(ctx, t, call, store.SourceAI, raw, false)
		ev.Rules = v.Rules
		recordFacts(ev, v)
		if te, ok := tools.AsError(err); ok {
			// The facts found a bad argument: the model should fix it.
			ev.Decision, ev.Reason = store.DecisionFailed, guardrails.RedactString(te.Msg)
			if err := g.audit(ctx, ev, start); err != nil {
				return mcp.NewToolResultError(internalMessage(ev.RequestID)), nil
			}
			return mcp.NewToolResultError(te.Msg), nil
		}
		if err != nil {
			g.log.Error("guardrails", "request_id", ev.RequestID, "tool", ev.Tool, "err", err)
		}
		switch v.Effect {
		case guardrails.EffectAllow:
		case guardrails.EffectRequireApproval:
			return g.queue(ctx, ev, start, t, call, raw, v), nil
		default:
			return g.deny(ctx, ev, start, policyReason(v), deniedMessage(v)), nil
		}
		hctx := context.WithValue(ctx, callKey{}, call)
		var pending *store.PendingAudit
		if t.Write {
			hctx, pending = store.WithPendingAudit(hctx, ev, g.prepare(call, start))
		}
		res, err := next(hctx, req)
		if !pending.Written() && (err != nil || res.IsError) {
			// Refused by the tool or failed before changing anything: the
			// call does not use up a rate limit.
			g.guard.refund(ctx, &v, ev.RequestID)
		}
		if pending.Written() {
			// The event was committed with the change, as executed.
			g.metrics.observe(ev, ev.Tool)
			if err != nil {
				g.log.Error("tool failed after its change was committed", "request_id", ev.RequestID, "tool", ev.Tool, "err", err)
				return mcp.NewToolResultError(internalMessage(ev.RequestID)), nil
			}
			return res, nil
		}
		ev.ResourceID = call.ResourceID
		ev.Result = call.Summary
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

// queue records a call the guardrails sent to a human and tells the agent
// where it stands. Nothing of the call runs now. A call the tool's Resolve
// says cannot run is refused instead, with the reason, and never queued;
// otherwise the approval pins what Resolve found (see pin).
func (g *Gate) queue(ctx context.Context, ev *store.AuditEvent, start time.Time, t tools.Tool, call *tools.Call, raw json.RawMessage, v verdict) *mcp.CallToolResult {
	args, facts, pins, refused := g.pin(ctx, ev, t, call, raw, v)
	if refused != "" {
		// A call that cannot run does not go on: it uses no budget.
		g.guard.refund(ctx, &v, ev.RequestID)
		ev.Decision, ev.Reason = store.DecisionFailed, guardrails.RedactString(refused)
		if err := g.audit(ctx, ev, start); err != nil {
			return mcp.NewToolResultError(internalMessage(ev.RequestID))
		}
		return mcp.NewToolResultError(refused)
	}
	a, err := g.guard.queue.Request(ctx, call.Principal, store.SourceAI, t.Spec.Name, args, v.Decision, facts, pins...)
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

// pin resolves what a call to be queued names (tools.Tool.Resolve): the
// arguments with objects named by id, the facts and the objects with their
// versions an approval pins. The facts are decided again on those
// arguments (the policies still see the names the agent gave), so what the
// human reviews is about the objects that will run.
// refused, when not empty, is what the model reads instead: the call
// cannot run, or something changed while it was checked, or the check
// failed (an internal error, logged).
func (g *Gate) pin(ctx context.Context, ev *store.AuditEvent, t tools.Tool, call *tools.Call, raw json.RawMessage, v verdict) (json.RawMessage, map[string]any, []store.ApprovalPin, string) {
	if t.Resolve == nil {
		return raw, v.Facts, nil, ""
	}
	res, err := t.Resolve(ctx, call, raw)
	ev.ResourceID = call.ResourceID
	if te, ok := tools.AsError(err); ok {
		return nil, nil, nil, "This call cannot run, so it was not queued for approval: " + te.Msg
	}
	if err != nil {
		g.log.Error("resolve call to queue", "request_id", ev.RequestID, "tool", ev.Tool, "err", err)
		return nil, nil, nil, internalMessage(ev.RequestID)
	}
	pinned := &tools.Call{Principal: call.Principal, Tool: call.Tool}
	again, err := g.guard.decideAs(ctx, t, pinned, store.SourceAI, res.Args, raw, true)
	if te, ok := tools.AsError(err); ok {
		return nil, nil, nil, "This call cannot run, so it was not queued for approval: " + te.Msg
	}
	if err != nil {
		g.log.Error("guardrails of call to queue", "request_id", ev.RequestID, "tool", ev.Tool, "err", err)
		return nil, nil, nil, internalMessage(ev.RequestID)
	}
	if again.Effect != v.Effect || !slices.Equal(again.Rules, v.Rules) {
		return nil, nil, nil, "The objects this call names changed while it was checked, so it was not queued for approval: look at them again (list_models, list_audiences) and repeat the call if it is still what you want."
	}
	return res.Args, again.Facts, res.Pins, ""
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
