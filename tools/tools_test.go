package tools

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/guardrails"
)

// wantPermission is DESIGN.md section 5's tool-to-permission table, written
// out so a change to either side fails here.
var wantPermission = map[string]string{
	"list_tables":       "sources.read",
	"describe_table":    "sources.read",
	"list_models":       "models.read",
	"get_model":         "models.read",
	"preview_model":     "models.read",
	"create_model":      "models.create",
	"update_model":      "models.update",
	"delete_model":      "models.delete",
	"list_audiences":    "audiences.read",
	"get_audience":      "audiences.read",
	"preview_audience":  "audiences.read",
	"create_audience":   "audiences.create",
	"update_audience":   "audiences.update",
	"delete_audience":   "audiences.delete",
	"list_destinations": "destinations.read",
	"get_destination":   "destinations.read",
	"list_syncs":        "syncs.read",
	"get_sync":          "syncs.read",
	"create_sync":       "syncs.create",
	"update_sync":       "syncs.update",
	"pause_sync":        "syncs.update",
	"resume_sync":       "syncs.update",
	"delete_sync":       "syncs.delete",
	"trigger_sync":      "syncs.trigger",
	"get_sync_run":      "syncs.read",
	"list_sync_runs":    "syncs.read",
	"check_action":      "", // any authenticated caller
	"list_approvals":    "approvals.read",
	"get_approval":      "approvals.read",
	"cancel_approval":   "approvals.read", // own requests only
	"search_audit":      "audit.read",
}

// wantWriteHints are the annotations of tools that change state (their
// readOnlyHint is false and their Write is true): whether a call can
// destroy something, and whether repeating it changes nothing more.
var wantWriteHints = map[string]struct{ destructive, idempotent bool }{
	"create_model":    {false, false},
	"update_model":    {false, true}, // replaces the fields it is given
	"delete_model":    {true, true},
	"create_audience": {false, false},
	"update_audience": {false, true},
	"delete_audience": {true, true},
	"cancel_approval": {false, true},
	"create_sync":     {false, false},
	"update_sync":     {false, true},
	"pause_sync":      {false, true},
	"resume_sync":     {false, true},
	"delete_sync":     {true, true},
	"trigger_sync":    {false, false}, // every run sends what changed since the last
}

func TestToolSpecs(t *testing.T) {
	t.Parallel()
	all := All(Deps{})
	if len(all) != len(wantPermission) {
		t.Errorf("%d tools, want %d", len(all), len(wantPermission))
	}
	name := regexp.MustCompile(`^[a-z]+(_[a-z]+)+$`)
	for _, tool := range all {
		spec := tool.Spec
		t.Run(spec.Name, func(t *testing.T) {
			want, ok := wantPermission[spec.Name]
			if !ok {
				t.Fatalf("tool %s is not in the table of DESIGN.md section 5", spec.Name)
			}
			if tool.Permission != want || (want != "" && !guardrails.IsPermission(tool.Permission)) {
				t.Errorf("permission %q, want %q", tool.Permission, want)
			}
			if !name.MatchString(spec.Name) {
				t.Errorf("name %q is not verb_noun", spec.Name)
			}
			if len(spec.Description) < 40 {
				t.Errorf("description too thin for a model: %q", spec.Description)
			}
			a := spec.Annotations
			if a.ReadOnlyHint == nil || a.DestructiveHint == nil || a.IdempotentHint == nil || a.OpenWorldHint == nil {
				t.Fatalf("annotations not all set: %+v", a)
			}
			// The read-only hint must say whether the tool writes, and a
			// tool whose permission only reads may not write, except
			// cancel_approval (a requester withdrawing its own request).
			if *a.ReadOnlyHint == tool.Write {
				t.Errorf("readOnlyHint %v but Write %v", *a.ReadOnlyHint, tool.Write)
			}
			reads := tool.Permission == "" || strings.HasSuffix(tool.Permission, ".read")
			if reads && tool.Write && spec.Name != "cancel_approval" {
				t.Errorf("tool writes with the read permission %s", tool.Permission)
			}
			if *a.ReadOnlyHint && *a.DestructiveHint {
				t.Error("a read-only tool cannot be destructive")
			}
			if !reads && !tool.Write {
				t.Errorf("tool with the write permission %s does not declare Write", tool.Permission)
			}
			if hints, ok := wantWriteHints[spec.Name]; ok {
				if *a.ReadOnlyHint || !tool.Write || *a.DestructiveHint != hints.destructive ||
					*a.IdempotentHint != hints.idempotent || *a.OpenWorldHint {
					t.Errorf("annotations %+v, write %v; want not read-only, destructive %v, idempotent %v, closed world",
						a, tool.Write, hints.destructive, hints.idempotent)
				}
			}
			if tool.Resource == "" || tool.Handler == nil {
				t.Error("tool lacks a resource type or a handler")
			}
			if _, err := json.Marshal(spec); err != nil {
				t.Fatalf("the tool cannot be listed: %v", err)
			}
			var schema map[string]any
			if err := json.Unmarshal(spec.RawInputSchema, &schema); err != nil || schema["type"] != "object" {
				t.Errorf("input schema is not an object schema: %s", spec.RawInputSchema)
			}
		})
	}
}

func TestDecodeIsStrict(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw, want string
	}{
		{`{"model":"customers","limit":5}`, ""},
		{`null`, ""},
		{`{"model":1}`, `invalid argument "model": expected a string`},
		{`{"limit":1.5,"model":"x"}`, `invalid argument "limit": expected an integer`},
		{`{"model":"x","extra":true}`, `unknown argument "extra"`},
		{`["model"]`, `expected a JSON object`},
		{`{"model":"x"} {"model":"y"}`, `expected a single JSON object`},
		{`{"model":`, `malformed JSON`},
	}
	for _, tc := range cases {
		var args previewModelArgs
		err := decode(json.RawMessage(tc.raw), &args)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("decode(%s) = %v", tc.raw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("decode(%s) = %v, want %q", tc.raw, err, tc.want)
		case tc.want != "":
			if _, ok := AsError(err); !ok {
				t.Errorf("decode(%s) error is not a model-facing *Error", tc.raw)
			}
		}
	}
}

// TestToolFactDeclarations: a tool computes facts exactly when it declares
// them, and declares only facts guardrails knows, each once. What each
// computes is checked against its declaration on a real warehouse in
// package server (TestToolFactsMatchDeclarations).
func TestToolFactDeclarations(t *testing.T) {
	t.Parallel()
	for _, tool := range All(Deps{}) {
		if (tool.Facts == nil) != (len(tool.FactNames) == 0) {
			t.Errorf("%s: computes facts %v, declares %v", tool.Spec.Name, tool.Facts != nil, tool.FactNames)
		}
		seen := map[string]bool{}
		for _, name := range tool.FactNames {
			if _, ok := guardrails.LookupFact(name); !ok || seen[name] {
				t.Errorf("%s declares fact %q, unknown to guardrails or declared twice", tool.Spec.Name, name)
			}
			seen[name] = true
		}
	}
}
