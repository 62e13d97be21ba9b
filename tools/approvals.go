package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/store"
)

type listApprovalsArgs struct {
	State string `json:"state,omitempty" jsonschema:"only approvals in this state: pending, approved, executing, succeeded, failed, rejected, expired or cancelled"`
	Limit int    `json:"limit,omitempty" jsonschema:"how many, newest first, 1 to 100 (default 20)"`
}

type approvalArgs struct {
	Approval string `json:"approval" jsonschema:"the approval id (apr_...) a queued call returned"`
}

// approvalView is an approval as its requester sees it.
type approvalView struct {
	ID        string          `json:"id"`
	Tool      string          `json:"tool"`
	State     string          `json:"state"`
	Args      json.RawMessage `json:"args"`
	Reason    string          `json:"reason"`
	Rules     []string        `json:"rules"`
	URL       string          `json:"url"`
	CreatedAt time.Time       `json:"created_at"`
	ExpiresAt time.Time       `json:"expires_at"`
	DecidedBy string          `json:"decided_by,omitempty"`
	Comment   string          `json:"comment,omitempty"`
	Outcome   string          `json:"outcome,omitempty"`
	Next      string          `json:"next"`
	// Pinned are the objects the call acts on as they were when it was
	// queued; the call fails instead of running if any of them changes.
	Pinned []store.ApprovalPin `json:"pinned"`
}

func approvalTools(d Deps) []Tool {
	view := func(a store.Approval) approvalView {
		v := approvalView{
			ID: a.ID, Tool: a.Tool, State: a.State, Args: a.Args, Reason: a.Reason, Rules: a.Rules,
			CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt, DecidedBy: a.DeciderName, Comment: a.Comment, Outcome: a.Outcome,
			Pinned: a.Pins,
		}
		if d.ApprovalURL != nil {
			v.URL = d.ApprovalURL(a.ID)
		}
		switch a.State {
		case store.ApprovalPending:
			v.Next = "wait: a human decides at " + v.URL + "; poll get_approval later, do not call the tool again"
		case store.ApprovalApproved, store.ApprovalExecuting:
			v.Next = "approved: it is running; poll get_approval for the outcome"
		case store.ApprovalSucceeded:
			v.Next = "done: the call ran; tell the user the outcome"
		case store.ApprovalRejected:
			v.Next = "rejected: do not retry; tell the user, with the comment"
		case store.ApprovalFailed:
			v.Next = "failed: the outcome says why; tell the user, and ask again only if the call is still what they want"
		default:
			v.Next = "closed without running; ask the user before trying again"
		}
		return v
	}
	own := func(ctx context.Context, call *Call, raw json.RawMessage) (store.Approval, error) {
		var args approvalArgs
		if err := decode(raw, &args); err != nil {
			return store.Approval{}, err
		}
		if err := required("approval", args.Approval); err != nil {
			return store.Approval{}, err
		}
		a, err := d.Store.GetApproval(ctx, call.Principal.WorkspaceID, args.Approval)
		if err == nil && a.RequesterID != call.Principal.MemberID {
			// Other members' requests are not this caller's to see.
			err = store.ErrNotFound
		}
		if err != nil {
			return store.Approval{}, notFound(err, "approval", args.Approval, "list_approvals")
		}
		call.ResourceID = a.ID
		return a, nil
	}
	return []Tool{
		{
			Spec: mcp.NewTool("list_approvals", append(readOnly("List your approval requests"),
				mcp.WithDescription("List the calls you made that wait for, or went through, a human's approval, newest first, optionally in one state. Each shows what to do next."),
				mcp.WithInputSchema[listApprovalsArgs]())...),
			Permission: "approvals.read",
			Resource:   "approval",
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args listApprovalsArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				if args.Limit == 0 {
					args.Limit = 20
				}
				if args.Limit < 1 || args.Limit > 100 {
					return Output{}, Errorf("invalid argument \"limit\": must be between 1 and 100")
				}
				states := []string{store.ApprovalPending, store.ApprovalApproved, store.ApprovalExecuting, store.ApprovalSucceeded,
					store.ApprovalFailed, store.ApprovalRejected, store.ApprovalExpired, store.ApprovalCancelled}
				if args.State != "" && !slices.Contains(states, args.State) {
					return Output{}, Errorf("invalid argument \"state\": must be one of %s", strings.Join(states, ", "))
				}
				list, err := d.Store.ListApprovals(ctx, store.ApprovalFilter{
					WorkspaceID: call.Principal.WorkspaceID, RequesterID: call.Principal.MemberID, State: args.State, Limit: args.Limit,
				})
				if err != nil {
					return Output{}, fmt.Errorf("list approvals: %w", err)
				}
				out := make([]approvalView, len(list))
				lines := make([]string, len(list))
				for i, a := range list {
					out[i] = view(a)
					lines[i] = fmt.Sprintf("%s %s: %s", a.ID, a.Tool, a.State)
				}
				call.Summary = fmt.Sprintf("%d approvals", len(out))
				return Output{Data: map[string]any{"approvals": out}, Text: "Your approval requests: " + strings.Join(lines, "; ")}, nil
			},
		},
		{
			Spec: mcp.NewTool("get_approval", append(readOnly("Get one of your approval requests"),
				mcp.WithDescription("Show one of your approval requests: its state (pending, approved, executing, succeeded, failed, rejected, expired, cancelled), who decided and their comment, the outcome, and what to do next. Poll this instead of repeating a queued call."),
				mcp.WithInputSchema[approvalArgs]())...),
			Permission: "approvals.read",
			Resource:   "approval",
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				a, err := own(ctx, call, raw)
				if err != nil {
					return Output{}, err
				}
				v := view(a)
				call.Summary = "approval " + a.State
				return Output{Data: v, Text: fmt.Sprintf("Approval %s for %s is %s. Next: %s", a.ID, a.Tool, a.State, v.Next)}, nil
			},
		},
		{
			Spec: mcp.NewTool("cancel_approval", append(annotations("Cancel one of your approval requests", false, false, true),
				mcp.WithDescription("Withdraw one of your pending approval requests, for example when the user changed their mind. Only pending requests can be cancelled; the queued call never runs."),
				mcp.WithInputSchema[approvalArgs]())...),
			Permission: "approvals.read",
			Resource:   "approval",
			Write:      true,
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				a, err := own(ctx, call, raw)
				if err != nil {
					return Output{}, err
				}
				if d.Approvals == nil {
					return Output{}, errors.New("cancel_approval: no approval queue configured")
				}
				a, err = d.Approvals.Cancel(ctx, call.Principal, a.ID)
				switch {
				case errors.Is(err, store.ErrConflict):
					return Output{}, Errorf("approval %s is no longer pending, so it cannot be cancelled: call get_approval to see its state", a.ID)
				case errors.Is(err, approvals.ErrForbidden):
					return Output{}, Errorf("only the requester can cancel an approval")
				case err != nil:
					return Output{}, err
				}
				call.Summary = "approval cancelled"
				return Output{Data: view(a), Text: fmt.Sprintf("Approval %s is cancelled; %s will not run.", a.ID, a.Tool)}, nil
			},
		},
	}
}
