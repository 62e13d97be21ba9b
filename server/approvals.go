package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// approvalsWeb builds the approval web queue and JSON API over the
// server's parts: keys checked by the authenticator, the principal re-read
// from the store on every request, approved calls run through the gate,
// and the diff target looked up by the gate's tool table.
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
// now: the argument named after the tool's resource type (model, audience,
// destination, sync) read from the store.
func (g *Gate) approvalTarget(ctx context.Context, a store.Approval) (approvals.Target, error) {
	t, ok := g.tools[a.Tool]
	if !ok {
		return approvals.Target{}, nil
	}
	tg := approvals.Target{Type: t.Resource, Operation: t.Operation()}
	var args map[string]any
	if json.Unmarshal(a.Args, &args) != nil {
		return tg, nil
	}
	ref, _ := args[t.Resource].(string)
	if ref == "" {
		ref, _ = args["id"].(string)
	}
	if ref == "" {
		return tg, nil
	}
	var obj any
	var err error
	switch t.Resource {
	case "model":
		obj, err = g.store.GetModel(ctx, a.WorkspaceID, ref)
	case "audience":
		var au store.Audience
		au, err = g.store.GetAudience(ctx, a.WorkspaceID, ref)
		obj = audienceView(au)
	case "destination":
		var d store.Destination
		d, err = g.store.GetDestination(ctx, a.WorkspaceID, ref)
		d.Config = guardrails.Redact(d.Config)
		obj = d
	case "sync":
		obj, err = g.store.GetSync(ctx, a.WorkspaceID, ref)
	default:
		return tg, nil
	}
	tg.ID = ref
	if errors.Is(err, store.ErrNotFound) {
		return tg, nil
	}
	if err != nil {
		return tg, err
	}
	tg.Object, err = json.Marshal(obj)
	return tg, err
}

// audienceView shows an audience's definition as JSON, not base64.
func audienceView(a store.Audience) any {
	def := json.RawMessage(a.Definition)
	if !json.Valid(def) {
		def = nil
	}
	return struct {
		store.Audience
		Definition json.RawMessage `json:"definition"`
	}{a, def}
}
