package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// governed are the resources only people may change (DESIGN.md section 2,
// principle 5).
var governed = []string{"role", "member", "group", "key", "policy", "access_filter", "workspace"}

// TestAgentCannotChangeItsOwnGovernance calls every tool an owner-role
// agent key can see, with arguments built from each tool's input schema and
// with hostile extras, and checks that nothing that governs agents changed:
// roles, members, groups, keys, policies, the kill switch, rate limits of
// other keys, access filters.
func TestAgentCannotChangeItsOwnGovernance(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	key, _ := e.key(t, "root-bot", "owner", store.KindAgent, nil)
	c := e.client(t, key)
	snapshot := func() map[string]string {
		out := map[string]string{}
		for _, q := range []string{
			`SELECT group_concat(name || ':' || built_in, ',') FROM (SELECT * FROM roles ORDER BY name)`,
			`SELECT group_concat(role || ':' || permission, ',') FROM (SELECT * FROM role_permissions ORDER BY 1, 2, 3)`,
			`SELECT group_concat(id || ':' || role || ':' || kind, ',') FROM (SELECT * FROM members ORDER BY id)`,
			`SELECT group_concat(id || ':' || ifnull(revoked_at, '') || ':' || ifnull(expires_at, ''), ',') FROM (SELECT * FROM api_keys ORDER BY id)`,
			`SELECT count(*) FROM groups`, `SELECT count(*) FROM group_members`,
			`SELECT group_concat(id || ':' || ai_writes_frozen, ',') FROM workspaces`,
			`SELECT count(*) FROM policy_sets`, `SELECT version FROM rbac_version`,
		} {
			var v any
			if err := e.raw.QueryRow(q).Scan(&v); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			b, _ := json.Marshal(v)
			out[q] = string(b)
		}
		return out
	}
	before := snapshot()
	list, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range list.Tools {
		for _, args := range argumentsFor(tool) {
			if _, err := tryCall(c, tool.Name, args); err != nil {
				t.Fatalf("%s: %v", tool.Name, err)
			}
		}
	}
	after := snapshot()
	for q, v := range before {
		if after[q] != v {
			t.Errorf("an agent's tool calls changed governance state:\n%s\nbefore %s\nafter  %s", q, v, after[q])
		}
	}

	// And should a tool on a governed resource ever be added, the default
	// policies deny it to agents.
	set, err := guardrails.DefaultPolicies()
	if err != nil {
		t.Fatal(err)
	}
	engine := guardrails.NewEngine(set, e.db)
	for _, res := range governed {
		for _, op := range []string{"create", "update", "delete", "trigger"} {
			d, _ := engine.DryRun(ctx, guardrails.Input{Principal: store.Principal{Role: "owner", Kind: store.KindAgent}, Source: store.SourceAI, Resource: res, Operation: op})
			if d.Effect != guardrails.EffectDeny {
				t.Errorf("default policies give %s on %s %s by an agent, want deny", d.Effect, op, res)
			}
		}
	}
}

// argumentsFor builds calls for a tool: every property filled with a
// plausible value of its type, hostile values aimed at governance, and the
// same with extra properties.
func argumentsFor(tool mcp.Tool) []map[string]any {
	var schema struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(tool.RawInputSchema, &schema)
	plain, hostile := map[string]any{}, map[string]any{}
	for name, p := range schema.Properties {
		types := []string{}
		switch v := p.Type.(type) {
		case string:
			types = append(types, v)
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					types = append(types, s)
				}
			}
		}
		switch {
		case slices.Contains(types, "string"):
			plain[name], hostile[name] = "customers", "owner"
		case slices.Contains(types, "integer"), slices.Contains(types, "number"):
			plain[name], hostile[name] = 1, 1000000
		case slices.Contains(types, "boolean"):
			plain[name], hostile[name] = true, false
		case slices.Contains(types, "array"):
			plain[name], hostile[name] = []any{}, []any{"workspace.manage"}
		default:
			plain[name], hostile[name] = map[string]any{}, map[string]any{"role": "owner"}
		}
	}
	extra := map[string]any{"role": "owner", "permissions": []any{"workspace.manage"}, "ai_writes_frozen": false, "limit_per_hour": 1000000}
	for k, v := range hostile {
		extra[k] = v
	}
	return []map[string]any{plain, hostile, extra, {"tool": "keys_create", "arguments": map[string]any{"role": "owner"}}}
}
