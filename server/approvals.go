package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/tools"
)

// approvalsWeb builds the approval web queue and JSON API over the
// server's parts: keys checked by the authenticator, the principal re-read
// from the store on every request, approved calls run through the gate,
// and the diff target loaded by the tool the approval names.
func approvalsWeb(cfg Config, auth *Authenticator, gate *Gate, link func(id string) string, base string, log *slog.Logger) (*approvals.Web, error) {
	names := make([]string, 0, len(gate.tools))
	for name := range gate.tools {
		names = append(names, name)
	}
	sort.Strings(names)
	return approvals.NewWeb(approvals.WebConfig{
		Queue: cfg.Approvals,
		Authenticate: func(ctx context.Context, key string) (store.Principal, error) {
			p, err := auth.Authenticate(ctx, key)
			var f *AuthFailure
			if errors.As(err, &f) {
				return p, &approvals.AuthFailure{KeyPrefix: f.Prefix, Reason: f.Reason}
			}
			return p, err
		},
		Principal: func(ctx context.Context, keyID string) (store.Principal, error) {
			return cfg.Store.Principal(ctx, keyID, time.Now())
		},
		Execute: gate.Execute,
		Target:  gate.approvalTarget,
		Tools:   names,
		Link:    link,
		Origins: []string{base},
		Logger:  log,
	})
}

// approvalNotifier makes the queue call the approval webhook, when one is
// configured.
func approvalNotifier(cfg Config, link func(id string) string, log *slog.Logger) error {
	if cfg.ApprovalWebhook == "" {
		return nil
	}
	hook, err := approvals.NewWebhook(cfg.ApprovalWebhook, link, approvals.WebhookOptions{Logger: log})
	if err != nil {
		return err
	}
	cfg.Approvals.SetNotifier(hook)
	return nil
}

// approvalTarget returns the object an approval's call acts on, as it is
// now, loaded by the tool itself (tools.Tool.Target) from the approval's
// pinned arguments. A tool without a Target acts on no existing object.
func (g *Gate) approvalTarget(ctx context.Context, a store.Approval) (approvals.Target, error) {
	t, ok := g.tools[a.Tool]
	if !ok {
		return approvals.Target{}, nil
	}
	tg := approvals.Target{Type: t.Resource, Operation: t.Operation()}
	if t.Target == nil {
		return tg, nil
	}
	call := &tools.Call{Principal: store.Principal{WorkspaceID: a.WorkspaceID}, Tool: a.Tool}
	cur, err := t.Target(ctx, call, a.Args)
	tg.ID = cur.ID
	if err != nil || cur.Object == nil {
		return tg, err
	}
	tg.Object, err = json.Marshal(cur.Object)
	return tg, err
}
