package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/store"
)

type listSyncsArgs struct{}

type syncArgs struct {
	Sync string `json:"sync" jsonschema:"the sync's id (syn_...), from list_syncs"`
}

func syncTools(d Deps) []Tool {
	return []Tool{
		{
			Spec: mcp.NewTool("list_syncs", append(readOnly("List syncs"),
				mcp.WithDescription("List the syncs of the workspace: which audience goes to which destination, in which mode (upsert, mirror, append), on which schedule, and whether it is active or paused."),
				mcp.WithInputSchema[listSyncsArgs]())...),
			Permission: "syncs.read",
			Resource:   "sync",
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				if err := decode(raw, &listSyncsArgs{}); err != nil {
					return Output{}, err
				}
				all, err := d.Store.ListSyncs(ctx, call.Principal.WorkspaceID)
				if err != nil {
					return Output{}, fmt.Errorf("list syncs: %w", err)
				}
				lines := make([]string, len(all))
				for i, s := range all {
					lines[i] = fmt.Sprintf("%s: %s -> %s (%s, %s)", s.ID, s.AudienceID, s.DestinationID, s.Mode, s.State)
				}
				call.Summary = fmt.Sprintf("%d syncs", len(all))
				return Output{Data: map[string]any{"syncs": all}, Text: "Syncs: " + strings.Join(lines, "; ")}, nil
			},
		},
		{
			Spec: mcp.NewTool("get_sync", append(readOnly("Get a sync"),
				mcp.WithDescription("Show one sync: its audience, destination, field mappings, mode, schedule and state."),
				mcp.WithInputSchema[syncArgs]())...),
			Permission: "syncs.read",
			Resource:   "sync",
			Target:     syncTarget(d),
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args syncArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				if err := required("sync", args.Sync); err != nil {
					return Output{}, err
				}
				s, err := d.Store.GetSync(ctx, call.Principal.WorkspaceID, args.Sync)
				if err != nil {
					return Output{}, notFound(err, "sync", args.Sync, "list_syncs")
				}
				call.ResourceID = s.ID
				call.Summary = "sync " + s.ID
				return Output{Data: s, Text: fmt.Sprintf("Sync %s: audience %s -> destination %s, %s, %s, schedule %s", s.ID, s.AudienceID, s.DestinationID, s.Mode, s.State, s.Schedule)}, nil
			},
		},
	}
}

// syncTarget is get_sync's Target.
func syncTarget(d Deps) TargetFunc {
	return targetOf("sync", func(ctx context.Context, workspaceID, ref string) (store.Sync, error) {
		return d.Store.GetSync(ctx, workspaceID, ref)
	}, nil)
}
