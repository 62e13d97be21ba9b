package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

type listAudiencesArgs struct {
	Model string `json:"model,omitempty" jsonschema:"only audiences over this model (id or name)"`
}

type audienceArgs struct {
	Audience string `json:"audience" jsonschema:"the audience's id (aud_...), from list_audiences"`
}

// audienceSummary is an audience as list_audiences shows it.
type audienceSummary struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	ModelID     string `json:"model_id"`
	Version     int    `json:"version"`
	UpdatedAt   string `json:"updated_at"`
}

func audienceTools(d Deps) []Tool {
	return []Tool{
		{
			Spec: mcp.NewTool("list_audiences", append(readOnly("List audiences"),
				mcp.WithDescription("List the saved audiences of the workspace, optionally only those over one model. Use get_audience for an audience's definition."),
				mcp.WithInputSchema[listAudiencesArgs]())...),
			Permission: "audiences.read",
			Resource:   "audience",
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args listAudiencesArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				modelID := ""
				if args.Model != "" {
					m, err := d.Store.GetModel(ctx, call.Principal.WorkspaceID, args.Model)
					if err != nil {
						return Output{}, notFound(err, "model", args.Model, "list_models")
					}
					modelID = m.ID
				}
				all, err := d.Store.ListAudiences(ctx, call.Principal.WorkspaceID)
				if err != nil {
					return Output{}, fmt.Errorf("list audiences: %w", err)
				}
				out := make([]audienceSummary, 0, len(all))
				names := make([]string, 0, len(all))
				for _, a := range all {
					if modelID != "" && a.ModelID != modelID {
						continue
					}
					out = append(out, audienceSummary{ID: a.ID, Name: a.Name, Description: a.Description, ModelID: a.ModelID, Version: a.Version, UpdatedAt: a.UpdatedAt.UTC().Format("2006-01-02T15:04:05Z")})
					names = append(names, fmt.Sprintf("%s (%s)", a.Name, a.ID))
				}
				call.Summary = fmt.Sprintf("%d audiences", len(out))
				return Output{Data: map[string]any{"audiences": out}, Text: "Audiences: " + strings.Join(names, ", ")}, nil
			},
		},
		{
			Spec: mcp.NewTool("get_audience", append(readOnly("Get an audience"),
				mcp.WithDescription("Show one audience: its parent model, its definition (conditions over the model and related models), its current version and when it last changed."),
				mcp.WithInputSchema[audienceArgs]())...),
			Permission: "audiences.read",
			Resource:   "audience",
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args audienceArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				if err := required("audience", args.Audience); err != nil {
					return Output{}, err
				}
				a, err := d.Store.GetAudience(ctx, call.Principal.WorkspaceID, args.Audience)
				if err != nil {
					return Output{}, notFound(err, "audience", args.Audience, "list_audiences")
				}
				call.ResourceID = a.ID
				call.Summary = fmt.Sprintf("audience %s version %d", a.Name, a.Version)
				out := map[string]any{
					"id":          a.ID,
					"name":        a.Name,
					"description": a.Description,
					"model_id":    a.ModelID,
					"definition":  json.RawMessage(a.Definition),
					"version":     a.Version,
					"created_at":  a.CreatedAt,
					"updated_at":  a.UpdatedAt,
				}
				return Output{Data: out, Text: fmt.Sprintf("Audience %s (%s), version %d, changed %s", a.Name, a.ID, a.Version, a.UpdatedAt.UTC().Format("2006-01-02 15:04 UTC"))}, nil
			},
		},
	}
}
