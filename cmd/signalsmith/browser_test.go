package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// chromiumPath is Debian's chromium, which scripts/test installs.
const chromiumPath = "/usr/bin/chromium"

// TestApprovalQueueInBrowser is the approval queue's end-to-end test: the
// real server on loopback over a demo data directory, an agent whose
// delete_model call waits for approval, and a person in Debian's chromium
// (driven by playwright-core, e2e/approve.mjs) who signs in with an admin
// user key, reads the impact, approves and sees it succeed. Then the model
// is gone and the audit trail holds the request, the decision and the
// execution with both actors. Screenshots go to e2e/artifacts/.
//
// It runs when SIGNALSMITH_E2E=1 (scripts/test sets it), and then fails,
// never skips, when chromium, node or the npm packages are missing.
func TestApprovalQueueInBrowser(t *testing.T) {
	if os.Getenv("SIGNALSMITH_E2E") != "1" {
		t.Skip("SIGNALSMITH_E2E is not 1: scripts/test runs the browser test")
	}
	root := repoRoot(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("SIGNALSMITH_E2E=1 but node is not installed")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("SIGNALSMITH_E2E=1 but %s is missing (scripts/test installs Debian's chromium): %v", chromiumPath, err)
	}
	if _, err := os.Stat(filepath.Join(root, "e2e", "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("SIGNALSMITH_E2E=1 but playwright-core is not installed (npm ci --prefix e2e): %v", err)
	}
	began := time.Now()

	dir := t.TempDir()
	d := startDemo(t, dir, freeAddr(t), "--scale", "300")
	base := "http://" + d.addr
	agentKey := d.agentKey(t)
	admin := createKeyJSON(t, dir, "--name", "ada", "--role", "admin", "--email", "ada@example.com")

	// The agent creates a scratch model, then asks to delete it: deletes
	// by an AI wait for a human under the default policies.
	c := mcpClient(t, base+"/mcp", agentKey)
	if res := callTool(t, c, "create_model", map[string]any{"name": "scratch", "table": "analytics.orders", "primary_key": "order_id"}); res.IsError {
		t.Fatalf("create_model: %v", res.Content)
	}
	res := callTool(t, c, "delete_model", map[string]any{"model": "scratch"})
	raw, _ := json.Marshal(res.StructuredContent)
	var queued struct {
		ApprovalID string `json:"approval_id"`
		State      string `json:"state"`
		URL        string `json:"url"`
	}
	if err := json.Unmarshal(raw, &queued); err != nil || res.IsError || queued.State != store.ApprovalPending || queued.URL != base+"/approvals/"+queued.ApprovalID {
		t.Fatalf("delete_model did not wait for approval: %s %v", raw, res.Content)
	}
	id := queued.ApprovalID

	// A person approves it in the browser.
	artifacts := filepath.Join(root, "e2e", "artifacts")
	runCtx, stop := context.WithTimeout(context.Background(), 3*time.Minute)
	defer stop()
	cmd := exec.CommandContext(runCtx, node, filepath.Join(root, "e2e", "approve.mjs"))
	cmd.Dir = filepath.Join(root, "e2e")
	cmd.Env = append(os.Environ(),
		"SIGNALSMITH_URL="+base,
		"SIGNALSMITH_ADMIN_KEY="+admin.Key,
		"SIGNALSMITH_APPROVAL_ID="+id,
		"SIGNALSMITH_EXPECT=Approving deletes this model.|scratch|analytics.orders",
		"SIGNALSMITH_ARTIFACTS="+artifacts,
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	browserStart := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("browser run failed (%v):\n%s\n%s", err, out.String(), errOut.String())
	}
	t.Logf("browser run: %s; whole test: %s; %s", time.Since(browserStart).Round(time.Millisecond), time.Since(began).Round(time.Millisecond), strings.TrimSpace(out.String()))
	shot, err := os.ReadFile(filepath.Join(artifacts, "approval-detail.png"))
	if err != nil || !bytes.HasPrefix(shot, []byte("\x89PNG")) {
		t.Errorf("no screenshot of the detail page: %v", err)
	}

	// The approval succeeded, decided by the admin.
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/approvals/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+admin.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var a store.Approval
	err = json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	if err != nil || a.State != store.ApprovalSucceeded || a.DeciderName != "ada" || a.Comment != "approved in the browser test" {
		t.Fatalf("approval after the browser: %+v (%v)", a, err)
	}
	// The effect: the model is gone.
	if res := callTool(t, c, "get_model", map[string]any{"model": "scratch"}); !res.IsError {
		t.Errorf("the scratch model is still there: %v", res.Content)
	}

	// The trail: the agent's request, the admin's decision in the web
	// queue, and the execution on the agent's behalf, approved by the admin.
	db, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events, err := db.Audit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	agentPrefix, adminPrefix := agentKey[:15], admin.Prefix
	var requested, decided, executed bool
	for _, ev := range events {
		if ev.ApprovalID != id {
			continue
		}
		switch {
		case ev.Decision == store.DecisionApprovalRequired && ev.Source == store.SourceAI && ev.KeyPrefix == agentPrefix && ev.Tool == "delete_model":
			requested = true
		case ev.Action == "approvals.decide" && ev.Decision == store.DecisionAllowed && ev.Source == store.SourceUI && ev.KeyPrefix == adminPrefix && ev.ActorName == "ada":
			decided = true
		case ev.Decision == store.DecisionExecuted && ev.Source == store.SourceUI && ev.KeyPrefix == agentPrefix && strings.Contains(ev.Reason, "ada"):
			executed = true
		}
	}
	if !requested || !decided || !executed {
		t.Errorf("audit trail of %s: requested %v, decided %v, executed %v", id, requested, decided, executed)
	}
}
