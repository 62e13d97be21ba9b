package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

type listDestinationsArgs struct{}

type destinationArgs struct {
	Destination string `json:"destination" jsonschema:"the destination's id (dst_...), from list_destinations"`
}

func destinationTools(d Deps) []Tool {
	return []Tool{
		{
			Spec: mcp.NewTool("list_destinations", append(readOnly("List destinations"),
				mcp.WithDescription("List where audiences can be sent: each destination's type (webhook, file), category (advertising, crm, marketing, analytics, other) and environment (production or sandbox). Credentials are never shown. Prefer sandbox destinations when testing."),
				mcp.WithInputSchema[listDestinationsArgs]())...),
			Permission: "destinations.read",
			Resource:   "destination",
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				if err := decode(raw, &listDestinationsArgs{}); err != nil {
					return Output{}, err
				}
				all, err := d.Store.ListDestinations(ctx, call.Principal.WorkspaceID)
				if err != nil {
					return Output{}, fmt.Errorf("list destinations: %w", err)
				}
				names := make([]string, len(all))
				for i, x := range all {
					names[i] = fmt.Sprintf("%s (%s, %s, %s)", x.Name, x.ID, x.Type, x.Environment)
				}
				call.Summary = fmt.Sprintf("%d destinations", len(all))
				return Output{Data: map[string]any{"destinations": all}, Text: "Destinations: " + strings.Join(names, ", ")}, nil
			},
		},
		{
			Spec: mcp.NewTool("get_destination", append(readOnly("Get a destination"),
				mcp.WithDescription("Show one destination: type, category, environment and its non-secret settings. Credentials are never shown."),
				mcp.WithInputSchema[destinationArgs]())...),
			Permission: "destinations.read",
			Resource:   "destination",
			Target:     destinationTarget(d),
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args destinationArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				if err := required("destination", args.Destination); err != nil {
					return Output{}, err
				}
				x, err := d.Store.GetDestination(ctx, call.Principal.WorkspaceID, args.Destination)
				if err != nil {
					return Output{}, notFound(err, "destination", args.Destination, "list_destinations")
				}
				call.ResourceID = x.ID
				call.Summary = "destination " + x.Name
				return Output{Data: x, Text: fmt.Sprintf("Destination %s (%s): %s, %s, %s", x.Name, x.ID, x.Type, x.Category, x.Environment)}, nil
			},
		},
	}
}

// destinationTarget is get_destination's Target: the destination with its
// settings redacted, as get_destination shows no credential either.
func destinationTarget(d Deps) TargetFunc {
	return targetOf("destination", func(ctx context.Context, workspaceID, ref string) (store.Destination, error) {
		return d.Store.GetDestination(ctx, workspaceID, ref)
	}, func(x store.Destination) any {
		x.Config = guardrails.Redact(x.Config)
		return x
	})
}
