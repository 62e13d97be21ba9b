package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// search_audit limits.
const (
	defaultAuditResults = 50
	maxAuditResults     = 200
)

type searchAuditArgs struct {
	Actor    string `json:"actor,omitempty" jsonschema:"only events of this actor: a member id (mem_...), a member name, or an API key prefix (ss_...)"`
	Source   string `json:"source,omitempty" jsonschema:"only events from this source: AI (MCP), API, UI, CLI or SYSTEM"`
	Tool     string `json:"tool,omitempty" jsonschema:"only calls of this tool, e.g. create_model"`
	Decision string `json:"decision,omitempty" jsonschema:"only events with this decision: allowed, denied, approval_required, executed or failed"`
	Since    string `json:"since,omitempty" jsonschema:"only events at or after this time, RFC 3339 (e.g. 2026-01-31T00:00:00Z)"`
	Until    string `json:"until,omitempty" jsonschema:"only events before this time, RFC 3339"`
	Limit    int    `json:"limit,omitempty" jsonschema:"how many events, newest first, 1 to 200 (default 50)"`
}

// auditResult is search_audit's structured result.
type auditResult struct {
	Events []store.AuditEvent `json:"events"`
	Count  int                `json:"count"`
	// More is true when the limit cut the result: narrow the filters or
	// move until back.
	More bool `json:"more"`
}

func auditTools(d Deps) []Tool {
	return []Tool{{
		Spec: mcp.NewTool("search_audit", append(readOnly("Search the audit trail"),
			mcp.WithDescription("Search the workspace's audit trail: one event per operation (tool calls by agents, decisions by people, key and policy changes), newest first, with who did it (actor, key prefix), the source, the action (permission), the tool, the resource, the decision (allowed, denied, approval_required, executed, failed), the rules and reason, redacted arguments, a result summary and the latency. Filter by actor, source, tool, decision and a time range (since/until, RFC 3339). Use it to answer what happened, who did it and why a call was denied."),
			mcp.WithInputSchema[searchAuditArgs]())...),
		Permission: "audit.read",
		Resource:   "audit",
		Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
			var args searchAuditArgs
			if err := decode(raw, &args); err != nil {
				return Output{}, err
			}
			f, err := auditFilter(call, args)
			if err != nil {
				return Output{}, err
			}
			// One more than asked for says whether there are more.
			want := f.Limit
			f.Limit++
			events, err := d.Store.Audit(ctx, f)
			if err != nil {
				return Output{}, fmt.Errorf("search audit: %w", err)
			}
			res := auditResult{Events: make([]store.AuditEvent, 0, min(len(events), want))}
			if len(events) > want {
				events, res.More = events[:want], true
			}
			// A reader with access filters does not read the recorded
			// facts counted beyond them, whoever's call they decided.
			filters, err := d.Store.AccessFiltersFor(ctx, call.Principal)
			if err != nil {
				return Output{}, fmt.Errorf("access filters of %s: %w", call.Principal.MemberID, err)
			}
			for _, e := range events {
				res.Events = append(res.Events, redactEvent(e, len(filters) > 0))
			}
			res.Count = len(res.Events)
			call.Summary = fmt.Sprintf("%d audit events", res.Count)
			return Output{Data: res, Text: auditText(res)}, nil
		},
	}}
}

// auditFilter checks search_audit's arguments and turns them into a filter
// on the caller's own workspace.
func auditFilter(call *Call, args searchAuditArgs) (store.AuditFilter, error) {
	f := store.AuditFilter{
		WorkspaceID: call.Principal.WorkspaceID,
		Actor:       strings.TrimSpace(args.Actor),
		Source:      strings.ToUpper(strings.TrimSpace(args.Source)),
		Tool:        strings.TrimSpace(args.Tool),
		Decision:    strings.ToLower(strings.TrimSpace(args.Decision)),
		Limit:       args.Limit,
	}
	sources := []string{store.SourceAI, store.SourceAPI, store.SourceUI, store.SourceCLI, store.SourceSystem}
	if f.Source != "" && !slices.Contains(sources, f.Source) {
		return f, Errorf("invalid argument \"source\": %q is not one of AI, API, UI, CLI, SYSTEM", guardrails.RedactString(args.Source))
	}
	decisions := []string{store.DecisionAllowed, store.DecisionDenied, store.DecisionApprovalRequired, store.DecisionExecuted, store.DecisionFailed}
	if f.Decision != "" && !slices.Contains(decisions, f.Decision) {
		return f, Errorf("invalid argument \"decision\": %q is not one of allowed, denied, approval_required, executed, failed", guardrails.RedactString(args.Decision))
	}
	var err error
	if f.Since, err = auditTime("since", args.Since); err != nil {
		return f, err
	}
	if f.Until, err = auditTime("until", args.Until); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, Errorf("invalid time range: since must be before until")
	}
	switch {
	case f.Limit == 0:
		f.Limit = defaultAuditResults
	case f.Limit < 1 || f.Limit > maxAuditResults:
		return f, Errorf("invalid argument \"limit\": must be between 1 and %d", maxAuditResults)
	}
	return f, nil
}

// auditTime parses an RFC 3339 time argument; empty is no bound.
func auditTime(name, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, Errorf("invalid argument %q: %q is not an RFC 3339 time such as 2026-01-31T00:00:00Z", name, guardrails.RedactString(s))
	}
	return t.UTC(), nil
}

// redactEvent returns an event as a caller may see it. Events are redacted
// when recorded; this applies the current rules again, so text recorded
// before a rule existed is covered too. filtered hides the recorded facts
// counted beyond access filters (withoutUnfiltered).
func redactEvent(e store.AuditEvent, filtered bool) store.AuditEvent {
	if e.Args != nil {
		e.Args = guardrails.Redact(e.Args)
		if facts, ok := e.Args[store.AuditFactsArg].(map[string]any); ok && filtered {
			e.Args[store.AuditFactsArg] = withoutUnfiltered(facts)
		}
	}
	e.Reason = guardrails.RedactString(e.Reason)
	e.Result = guardrails.RedactString(e.Result)
	return e
}

// auditText renders a search result briefly, newest first.
func auditText(res auditResult) string {
	if res.Count == 0 {
		return "No audit events match."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d audit events, newest first", res.Count)
	if res.More {
		b.WriteString(" (more match: narrow the filters or set until to the oldest shown)")
	}
	b.WriteString(":")
	for i, e := range res.Events {
		if i == 10 {
			fmt.Fprintf(&b, "\n… and %d more in the structured result", res.Count-10)
			break
		}
		actor := e.ActorName
		if actor == "" {
			actor = e.ActorType
		}
		what := e.Tool
		if what == "" {
			what = e.Action
		}
		fmt.Fprintf(&b, "\n%s %s %s %s %s", e.At.UTC().Format(time.RFC3339), e.Source, actor, what, e.Decision)
		if e.Reason != "" {
			fmt.Fprintf(&b, " (%s)", e.Reason)
		}
	}
	return b.String()
}
