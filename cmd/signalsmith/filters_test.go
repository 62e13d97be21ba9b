package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// TestFiltersCommands adds, lists and removes destination filters, refuses
// bad ones whole with a clear error, and audits every change and refusal.
func TestFiltersCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := db.EnsureWorkspace(ctx, defaultWorkspace, guardrails.BuiltInRoles())
	if err == nil {
		err = demo.SeedMetadata(ctx, db, ws.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	dest, err := db.CreateDestination(ctx, store.Destination{WorkspaceID: ws.ID, Name: "Ads", Type: "webhook", Category: "advertising",
		Environment: "production", Config: map[string]any{"url": "https://127.0.0.1/hook"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.EnsureWorkspace(ctx, "other", guardrails.BuiltInRoles())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := db.CreateDestination(ctx, store.Destination{WorkspaceID: other.ID, Name: "Theirs", Type: "webhook", Category: "crm",
		Environment: "production", Config: map[string]any{"url": "https://127.0.0.1/hook"}})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown effect", []string{"--effect", "encrypt", "--column", "email"}, `effect "encrypt" is not one of`},
		{"unknown category", []string{"--effect", "drop", "--category", "billboards", "--column", "email"}, `category "billboards"`},
		{"unknown environment", []string{"--effect", "drop", "--environment", "staging", "--column", "email"}, `environment "staging"`},
		{"unknown column", []string{"--effect", "drop", "--column", "shoe_size"}, `column "shoe_size" is not a column of any model`},
		{"unknown column of a model", []string{"--effect", "drop", "--model", "customers", "--column", "amount"}, `column "amount" is not a column of model customers`},
		{"unknown level", []string{"--effect", "drop", "--pii-level", "secret"}, `pii level "secret"`},
		{"another workspace's destination", []string{"--effect", "block", "--destination", foreign.ID}, "is not a destination of this workspace"},
		{"allow of blocked columns", []string{"--effect", "allow", "--pii-level", "blocked"}, "blocked columns can never leave"},
		{"rate limit without a window", []string{"--effect", "rate_limit", "--limit", "10"}, "per run or per hour"},
		{"drop without a column", []string{"--effect", "drop", "--category", "crm"}, "applies to columns"},
		{"no reason", []string{"--effect", "block", "--category", "crm", "--reason", ""}, "a reason"},
	} {
		args := append([]string{"filters", "add", "--reason", "test"}, tc.args...)
		if _, _, err := run(t, dir, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	out, _, err := run(t, dir, "filters", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Filters []store.DestinationFilter }
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Filters) != 0 {
		t.Fatalf("after refused adds: %s (%v), want no filter", out, err)
	}

	out, _, err = run(t, dir, "filters", "add", "--effect", "allow", "--destination", dest.ID, "--model", "customers",
		"--column", "email", "--priority", "5", "--reason", "the ad platform hashes itself", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var added store.DestinationFilter
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.ID == "" || !strings.HasPrefix(added.Model, store.ModelIDPrefix) {
		t.Fatalf("add: %s (%v), want the filter with its model as an id", out, err)
	}
	if _, _, err := run(t, dir, "destination-filters", "add", "--effect", "rate_limit", "--limit", "1000", "--per", "hour",
		"--category", "advertising", "--reason", "the platform's quota"); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, dir, "filters", "list")
	if err != nil || !strings.Contains(out, added.ID) || !strings.Contains(out, "rate_limit 1000/hour") {
		t.Fatalf("list: %s (%v)", out, err)
	}
	if _, _, err := run(t, dir, "filters", "remove", added.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, dir, "filters", "remove", added.ID); err == nil {
		t.Fatal("removing a removed filter succeeded")
	}
	out, _, _ = run(t, dir, "filters", "list")
	if strings.Contains(out, added.ID) {
		t.Fatalf("list after remove: %s", out)
	}

	db, err = sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.Audit(ctx, store.AuditFilter{WorkspaceID: ws.ID, Source: store.SourceCLI})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, ev := range evs {
		if ev.ResourceType == "destination_filter" && ev.Action == "governance.manage" {
			counts[ev.Decision]++
		}
	}
	if counts[store.DecisionExecuted] != 3 || counts[store.DecisionFailed] != 12 {
		t.Fatalf("audit decisions %v, want 3 executed (2 adds, 1 remove) and 12 failed", counts)
	}
}
