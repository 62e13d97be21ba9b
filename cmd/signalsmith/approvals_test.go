package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// runAs runs one command with SIGNALSMITH_API_KEY set to key.
func runAs(t *testing.T, dataDir, key string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(name string) string {
		if name == "SIGNALSMITH_API_KEY" {
			return key
		}
		return ""
	}}
	err := m.Run(context.Background(), append([]string{"--data-dir", dataDir}, args...))
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return stdout.String(), err
}

func createKeyJSON(t *testing.T, dir string, args ...string) createdKey {
	t.Helper()
	out, _, err := run(t, dir, append([]string{"keys", "create", "--json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var k createdKey
	if err := json.Unmarshal([]byte(out), &k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestApprovalsCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	createKeyJSON(t, dir, "--name", "hana", "--role", "member", "--email", "hana@example.test")
	agent := createKeyJSON(t, dir, "--name", "bot", "--role", "member", "--kind", "agent", "--owner", "hana")
	admin := createKeyJSON(t, dir, "--name", "boss", "--role", "admin", "--email", "boss@example.test")
	member := createKeyJSON(t, dir, "--name", "mia", "--role", "member", "--email", "mia@example.test")
	if err := demo.Generate(ctx, filepath.Join(dir, "warehouse"), demo.Options{Scale: 100}); err != nil {
		t.Fatal(err)
	}

	// The agent's call was queued (as the gate does for require_approval).
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := db.EnsureWorkspace(ctx, defaultWorkspace, guardrails.BuiltInRoles())
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.SeedMetadata(ctx, db, ws.ID); err != nil {
		t.Fatal(err)
	}
	k, err := db.KeyByPrefix(ctx, agent.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.Principal(ctx, k.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rbac, err := guardrails.NewRBAC(ctx, db, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	customers, err := db.GetModel(ctx, ws.ID, "customers")
	if err != nil {
		t.Fatal(err)
	}
	// An approval names its objects by id and pins their versions.
	a, err := approvals.NewQueue(db, rbac, 0).Request(ctx, p, store.SourceAI, "preview_model", json.RawMessage(`{"model":"`+customers.ID+`","limit":3}`),
		guardrails.Decision{Effect: guardrails.EffectRequireApproval, Rules: []string{"ai-delete"}, Reason: "test", PolicyVersion: "v"}, nil,
		store.ApprovalPin{Type: "model", ID: customers.ID, Name: customers.Name, Version: customers.Version})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	out, err := runAs(t, dir, "", "approvals", "list", "--state", "pending")
	if err != nil || !strings.Contains(out, a.ID) || !strings.Contains(out, "preview_model") {
		t.Fatalf("approvals list: %v\n%s", err, out)
	}
	for name, key := range map[string]string{"the requesting agent": agent.Key, "a member without approvals.decide": member.Key, "no key": ""} {
		if _, err := runAs(t, dir, key, "approvals", "approve", a.ID); err == nil {
			t.Errorf("%s approved", name)
		}
	}
	out, err = runAs(t, dir, admin.Key, "approvals", "approve", a.ID, "--comment", "looks fine")
	if err != nil || !strings.Contains(out, "ran: succeeded") {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	out, err = runAs(t, dir, "", "approvals", "show", a.ID, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got store.Approval
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.State != store.ApprovalSucceeded || got.DeciderName != "boss" || got.Comment != "looks fine" || !strings.Contains(got.Outcome, `"row_count":3`) {
		t.Errorf("after approval: %+v", got)
	}
	if _, err := runAs(t, dir, admin.Key, "approvals", "reject", a.ID); err == nil {
		t.Error("rejecting a finished approval succeeded")
	}
	if _, err := runAs(t, dir, admin.Key, "approvals", "show", "apr_nope"); err == nil || !strings.Contains(err.Error(), "no approval") {
		t.Errorf("unknown approval: %v", err)
	}
	// The trail: request, refused attempts, the decision and the execution.
	out, _, err = run(t, dir, "audit", "tail", "-n", "100", "--json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"result":"approved"`, `"decision":"executed"`, `"source":"CLI"`, `"decision":"denied"`} {
		if !strings.Contains(out, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
}
