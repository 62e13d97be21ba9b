package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/guardrails"
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

func TestRunningServerFollowsAppliedPolicies(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	m := NewMain()
	m.DataDir = dir
	db, ws, err := m.openStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defaults, err := guardrails.DefaultPolicies()
	if err != nil {
		t.Fatal(err)
	}
	engine := guardrails.NewEngine(defaults, db)
	go watchPolicies(ctx, db, ws, engine, slog.New(slog.NewTextHandler(io.Discard, nil)), 10*time.Millisecond)

	good := filepath.Join(dir, "strict.yaml")
	if err := os.WriteFile(good, []byte(strictPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, dir, "policies", "apply", good); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return engine.Policies().Version != defaults.Version && engine.Policies().Policies[0].ID == "no-ai-writes"
	})
	if _, _, err := run(t, dir, "policies", "reset"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return engine.Policies().Version == defaults.Version })
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in time")
}
