package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// approvalsCmd runs "signalsmith approvals list|show|approve|reject". To
// decide, a person identifies with their own user key in
// SIGNALSMITH_API_KEY: the same rules apply as in the web queue (a human
// holding approvals.decide who is not the requester nor the human behind
// the requesting agent). An approved call runs at once, through the gate.
func (m *Main) approvalsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	fs := m.newFlags("approvals " + args[0])
	asJSON := fs.Bool("json", false, "print JSON")
	state := fs.String("state", "", "list: only approvals in this state")
	comment := fs.String("comment", "", "approve/reject: a comment for the requester")
	c := serveConfig{addr: "127.0.0.1:8080", timeout: 30 * time.Second, maxRows: 10000}
	fs.StringVar(&c.policy, "policy", "", "approve: the policy file the server runs with (default: the applied policies, see signalsmith policies)")
	fs.StringVar(&c.baseURL, "public-url", "", "the server's public URL, for links")
	fs.StringVar(&c.webhook, "approval-webhook", m.Getenv("SIGNALSMITH_APPROVAL_WEBHOOK"), "approve/reject: URL to notify of the decision (env SIGNALSMITH_APPROVAL_WEBHOOK)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	switch {
	case args[0] == "list" && len(pos) == 0:
		list, err := db.ListApprovals(ctx, store.ApprovalFilter{WorkspaceID: ws.ID, State: *state, Limit: 1000})
		if err != nil {
			return err
		}
		if *asJSON {
			if list == nil {
				list = []store.Approval{}
			}
			return json.NewEncoder(m.Stdout).Encode(list)
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tTOOL\tREQUESTER\tCREATED\tREASON")
		for _, a := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.State, a.Tool, a.RequesterName, a.CreatedAt.UTC().Format(time.DateTime), a.Reason)
		}
		return tw.Flush()
	case args[0] == "show" && len(pos) == 1:
		a, err := db.GetApproval(ctx, ws.ID, pos[0])
		if err != nil {
			return approvalError(pos[0], err)
		}
		if *asJSON {
			return json.NewEncoder(m.Stdout).Encode(a)
		}
		fmt.Fprintf(m.Stdout, "Approval %s: %s\nTool: %s\nArguments: %s\nRequested by: %s (%s key %s) at %s\nWhy: %s\nExpires: %s\n",
			a.ID, a.State, a.Tool, a.Args, a.RequesterName, a.RequesterKind, server.MaskKey(a.KeyPrefix), a.CreatedAt.UTC().Format(time.DateTime), a.Reason, a.ExpiresAt.UTC().Format(time.DateTime))
		if a.DeciderName != "" {
			fmt.Fprintf(m.Stdout, "Decided by: %s (%s)\n", a.DeciderName, a.Comment)
		}
		if a.Outcome != "" {
			fmt.Fprintf(m.Stdout, "Outcome: %s\n", a.Outcome)
		}
		return nil
	case (args[0] == "approve" || args[0] == "reject") && len(pos) == 1:
		return m.decide(ctx, db, ws, pos[0], args[0] == "approve", *comment, c)
	default:
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
}

// decide approves or rejects as the person whose key is in
// SIGNALSMITH_API_KEY, and runs an approved call.
func (m *Main) decide(ctx context.Context, db *sqlite.DB, ws store.Workspace, id string, approve bool, comment string, c serveConfig) error {
	key := m.Getenv("SIGNALSMITH_API_KEY")
	if key == "" {
		return errors.New("deciding needs your own user key in SIGNALSMITH_API_KEY")
	}
	srv, err := m.build(ctx, db, ws, c)
	if err != nil {
		return err
	}
	p, err := srv.Authenticator().Authenticate(ctx, key)
	if err != nil {
		return fmt.Errorf("SIGNALSMITH_API_KEY: %w", err)
	}
	defer func() {
		// Let the webhook hear of the decision before the process exits.
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		_ = srv.Approvals().Flush(flushCtx)
	}()
	a, err := srv.Approvals().Decide(ctx, p, store.SourceCLI, id, approve, comment)
	if err != nil {
		return approvalError(id, err)
	}
	if !approve {
		fmt.Fprintf(m.Stdout, "Rejected approval %s; %s will not run.\n", a.ID, a.Tool)
		return nil
	}
	a, err = srv.Gate().Execute(ctx, a, store.SourceCLI)
	if err != nil {
		return approvalError(id, err)
	}
	fmt.Fprintf(m.Stdout, "Approved %s; %s ran: %s\n", a.ID, a.Tool, a.State)
	if a.State == store.ApprovalFailed {
		fmt.Fprintf(m.Stdout, "Reason: %s\n", a.Outcome)
	}
	return nil
}

// approvalError explains a failed approval command.
func approvalError(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no approval %q in this workspace (see signalsmith approvals list)", id)
	}
	return err
}
