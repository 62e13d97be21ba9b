package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
	"golang.org/x/crypto/bcrypt"
)

const strictPolicy = `policies:
  - id: no-ai-writes
    type: deny
    resources: ["*"]
    operations: [create, update, delete, trigger]
    sources: [AI]
    message: agents may not write here
`

func TestPoliciesCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, _, err := run(t, dir, "policies", "show")
	if err != nil || !strings.Contains(out, "(shipped defaults)") || !strings.Contains(out, "id: ai-delete") {
		t.Fatalf("show defaults: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("policies:\n  - id: x\n    type: deny\n    resources: [model]\n    operations: [any]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, dir, "policies", "apply", bad); err == nil || !strings.Contains(err.Error(), bad+":2:") {
		t.Fatalf("apply a bad file: %v", err)
	}
	if out, _, _ := run(t, dir, "policies", "show"); !strings.Contains(out, "(shipped defaults)") {
		t.Fatalf("a bad file changed the policies:\n%s", out)
	}
	good := filepath.Join(dir, "strict.yaml")
	if err := os.WriteFile(good, []byte(strictPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run(t, dir, "policies", "apply", good); err != nil || !strings.Contains(out, "Applied policy set") {
		t.Fatalf("apply: %v %s", err, out)
	}
	out, _, _ = run(t, dir, "policies", "show")
	if !strings.Contains(out, "applied by operator") || !strings.Contains(out, "no-ai-writes") {
		t.Fatalf("show after apply:\n%s", out)
	}
	if _, _, err := run(t, dir, "policies", "reset"); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, dir, "policies", "show"); !strings.Contains(out, "(shipped defaults)") {
		t.Fatalf("show after reset:\n%s", out)
	}
	out, _, err = run(t, dir, "audit", "tail", "--json")
	if err != nil || strings.Count(out, `"action":"governance.manage"`) != 2 {
		t.Errorf("policy changes are not audited:\n%s", out)
	}
	for _, args := range [][]string{{"policies"}, {"policies", "apply"}, {"policies", "show", "x"}, {"policies", "burn"}} {
		if _, _, err := run(t, dir, args...); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
}

// TestRunningServerFollowsAppliedPolicies applies and resets policy sets
// from the command line (another DB handle, as another process would)
// while a server built as serve builds it runs: its next call decides with
// the new set, and with --policy the file stays in force.
func TestRunningServerFollowsAppliedPolicies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	m := NewMain()
	m.DataDir = dir
	db, ws, err := m.openStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := demo.Generate(ctx, m.warehouseDir(), demo.Options{Scale: 50, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "strict.yaml")
	if err := os.WriteFile(good, []byte(strictPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	followed, err := m.build(ctx, db, ws, serveConfig{addr: "127.0.0.1:0", timeout: time.Second, maxRows: 10})
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := m.build(ctx, db, ws, serveConfig{addr: "127.0.0.1:0", timeout: time.Second, maxRows: 10, policy: good})
	if err != nil {
		t.Fatal(err)
	}
	full, prefix, hash, err := server.NewKeySecret(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateKey(ctx, store.NewKey{WorkspaceID: ws.ID, MemberName: "ada", Email: "ada@example.test",
		Kind: store.KindUser, Role: "owner", Prefix: prefix, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	call := func(srv *server.Server) {
		t.Helper()
		msg := json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_models","arguments":{}}}`)
		if r, ok := srv.MCP().HandleMessage(server.WithKey(ctx, full), msg).(mcp.JSONRPCResponse); !ok {
			t.Fatalf("list_models: %+v", r)
		}
	}
	defaults, err := guardrails.DefaultPolicies()
	if err != nil {
		t.Fatal(err)
	}
	engine := followed.Policies()

	if _, _, err := run(t, dir, "policies", "apply", good); err != nil {
		t.Fatal(err)
	}
	call(followed)
	if engine.Policies().Version == defaults.Version || engine.Policies().Policies[0].ID != "no-ai-writes" {
		t.Errorf("after apply the next call ran under policy set %s", engine.Policies().Version)
	}
	if _, _, err := run(t, dir, "policies", "reset"); err != nil {
		t.Fatal(err)
	}
	call(followed)
	if engine.Policies().Version != defaults.Version {
		t.Errorf("after reset the next call ran under policy set %s, want the defaults %s", engine.Policies().Version, defaults.Version)
	}
	call(pinned)
	if pinned.Policies().Policies().Policies[0].ID != "no-ai-writes" {
		t.Errorf("serve --policy followed the stored set to %s", pinned.Policies().Policies().Version)
	}
}
