package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

type checkActionArgs struct {
	Tool      string          `json:"tool" jsonschema:"the name of the tool you want to call, e.g. delete_audience"`
	Arguments json.RawMessage `json:"arguments,omitempty" jsonschema:"the arguments you would pass to it, as a JSON object"`
}

func governanceTools(d Deps) []Tool {
	return []Tool{
		{
			Spec: mcp.NewTool("check_action", append(readOnly("Check whether an action is allowed"),
				mcp.WithDescription("Dry run: given a tool name and its arguments, say what would happen if you called it (allow, require_approval, deny, rate_limited, forbidden by your role, or cannot_run: refused at once because what it names is missing or in use), with the rules that fired, the reasons, what you could do instead, and the facts the decision used (sizes counted beyond your access filters are left out). Nothing runs and no rate limit is used. Call it before a write you are unsure about."),
				mcp.WithInputSchema[checkActionArgs]())...),
			Resource: "policy",
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args checkActionArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				if err := required("tool", args.Tool); err != nil {
					return Output{}, err
				}
				if args.Tool == "check_action" {
					return Output{}, Errorf("check_action checks other tools; give the name of the tool you want to call")
				}
				if d.Check == nil {
					return Output{}, fmt.Errorf("check_action: no checker configured")
				}
				c, err := d.Check(ctx, call, args.Tool, args.Arguments)
				if err != nil {
					return Output{}, err
				}
				c.Facts = callerFacts(c.Facts)
				call.ResourceID = args.Tool
				call.Summary = "check " + args.Tool + ": " + c.Effect
				text := fmt.Sprintf("%s would be: %s", args.Tool, c.Effect)
				if c.Reason != "" {
					text += " (" + c.Reason + ")"
				}
				if len(c.Suggestions) > 0 {
					text += ". Instead: " + strings.Join(c.Suggestions, "; ")
				}
				return Output{Data: c, Text: text}, nil
			},
		},
	}
}
