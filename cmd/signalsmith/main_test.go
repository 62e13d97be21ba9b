package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
)

var keyRE = regexp.MustCompile(`ss_[a-z2-7]{12}_[a-z2-7]{52}`)

// run runs one command in process against dataDir and returns its output.
func run(t *testing.T, dataDir string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	err := m.Run(context.Background(), append([]string{"--data-dir", dataDir}, args...))
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return stdout.String(), stderr.String(), err
}

func TestKeysCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, _, err := run(t, dir, "keys", "create", "--name", "alice", "--role", "admin", "--email", "alice@example.test", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var created createdKey
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("keys create --json printed %q: %v", out, err)
	}
	if !keyRE.MatchString(created.Key) || !strings.HasPrefix(created.Key, created.Prefix+"_") || !strings.HasPrefix(created.ID, "key_") {
		t.Fatalf("created = %+v", created)
	}

	out, _, err = run(t, dir, "keys", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, created.Key[16:]) || !strings.Contains(out, created.Prefix+"_****") || !strings.Contains(out, "active") {
		t.Errorf("keys list must show the masked prefix and status, never the secret:\n%s", out)
	}

	out, _, err = run(t, dir, "keys", "rotate", created.ID, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rotated createdKey
	if err := json.Unmarshal([]byte(out), &rotated); err != nil || rotated.Key == created.Key || rotated.ID == created.ID {
		t.Fatalf("keys rotate printed %q (%v)", out, err)
	}
	out, _, err = run(t, dir, "keys", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var keys []store.Key
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatal(err)
	}
	status := map[string]bool{}
	for _, k := range keys {
		status[k.ID] = k.RevokedAt == nil
	}
	if len(keys) != 2 || status[created.ID] || !status[rotated.ID] {
		t.Errorf("after rotation: %s", out)
	}

	if _, _, err := run(t, dir, "keys", "revoke", rotated.Prefix); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, dir, "keys", "revoke", rotated.Prefix); err == nil || !strings.Contains(err.Error(), "already revoked") {
		t.Errorf("revoking twice: %v", err)
	}
	if _, _, err := run(t, dir, "keys", "revoke", "key_nope"); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("revoking an unknown key: %v", err)
	}
}

func TestKeysCreateRejectsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := [][]string{
		{"keys", "create", "--name", "x"},
		{"keys", "create", "--role", "member"},
		{"keys", "create", "--name", "x", "--role", "emperor"},
		{"keys", "create", "--name", "x", "--role", "member", "--kind", "robot"},
		{"keys", "create", "--name", "x", "--role", "member", "--expires", "-1h"},
		{"keys", "create", "--name", "x", "--role", "member", "--expires", "soon"},
		{"keys", "create", "--name", "bot", "--role", "member", "--kind", "agent", "--owner", "nobody"},
		{"keys", "frobnicate"},
	}
	for _, args := range cases {
		out, _, err := run(t, dir, args...)
		if err == nil {
			t.Errorf("%v succeeded", args)
		}
		if keyRE.MatchString(out) {
			t.Errorf("%v printed a key although it failed", args)
		}
	}
	out, _, err := run(t, dir, "keys", "list", "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("bad input created keys: %s %v", out, err)
	}
}

// TestServeDemo runs "serve --demo" as a newcomer would and drives it with
// the real mcp-go client over HTTP, then with the CLI from another Main.
func TestServeDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := startDemo(t, dir, freeAddr(t), "--scale", "300")
	addr, stdout, stderr := d.addr, d.stdout, d.stderr
	ownerKey, agentKey := d.ownerKey(t), d.agentKey(t)
	for _, want := range []string{"claude mcp add --transport http", `"SIGNALSMITH_API_KEY"`, `"mcpServers"`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("first-run output lacks %s", want)
		}
	}
	if strings.Contains(stderr.String(), agentKey[16:]) || strings.Contains(stderr.String(), ownerKey[16:]) {
		t.Error("a key secret reached the log")
	}

	c := mcpClient(t, "http://"+addr+"/mcp", agentKey)
	res := callTool(t, c, "preview_model", map[string]any{"model": "customers", "limit": 5})
	if res.IsError {
		t.Fatalf("preview_model: %v", res.Content)
	}
	raw, _ := json.Marshal(res.StructuredContent)
	if !strings.Contains(string(raw), `"email":"***"`) || strings.Contains(string(raw), "@example.") {
		t.Errorf("preview does not mask emails: %s", raw)
	}

	if conformanceEnabled(t) {
		runConformance(t, "http://"+addr+"/mcp", ownerKey)
		runInspector(t, "http://"+addr+"/mcp", agentKey)
	}

	// Revoke the agent key from the CLI while the server runs.
	prefix := agentKey[:15]
	if _, _, err := run(t, dir, "keys", "revoke", prefix); err != nil {
		t.Fatal(err)
	}
	if _, err := tryCallTool(c, "list_tables", nil); err == nil {
		t.Error("the revoked agent key still works")
	}
	out, _, err := run(t, dir, "audit", "tail", "-n", "1000", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var sawPreview, sawRevoked bool
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev store.AuditEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit tail --json line %q: %v", line, err)
		}
		switch {
		case ev.Source == store.SourceSystem || ev.Source == store.SourceCLI:
			// The demo keys serve created and the revocation below.
			if ev.Action != "members.manage" || ev.ResourceType != "api_key" || ev.ActorID != strings.ToLower(ev.Source) {
				t.Errorf("operator audit event = %+v", ev)
			}
			continue
		case ev.Source != store.SourceAI:
			t.Errorf("MCP audit event with source %q", ev.Source)
		}
		if ev.Tool == "preview_model" && ev.Decision == store.DecisionAllowed && ev.KeyPrefix == prefix {
			sawPreview = true
		}
		if ev.Tool == "list_tables" && ev.Decision == store.DecisionDenied && ev.KeyPrefix == prefix {
			sawRevoked = true
		}
	}
	if !sawPreview || !sawRevoked {
		t.Errorf("audit tail lacks the preview (%v) or the refused call (%v):\n%s", sawPreview, sawRevoked, out)
	}
	text, _, err := run(t, dir, "audit", "tail")
	if err != nil || !strings.Contains(text, "preview_model") || !strings.Contains(text, "denied") {
		t.Errorf("audit tail: %v\n%s", err, text)
	}

	// A second start reuses the data and prints no new keys.
	if err := d.stop(); err != nil {
		t.Fatalf("serve did not shut down cleanly: %v", err)
	}
	again := startDemo(t, dir, addr)
	if err := again.stop(); err != nil {
		t.Fatal(err)
	}
	if keyRE.MatchString(again.stdout.String()) {
		t.Error("a second start printed keys again")
	}
}

// demoServer is "serve --demo" running in process on a loopback address.
type demoServer struct {
	addr           string
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	exited         chan struct{}
	err            error
}

// startDemo runs serve --demo over dir on addr, with more serve flags, and
// waits until it answers /healthz. It is stopped when the test ends, if
// not before.
func startDemo(t *testing.T, dir, addr string, flags ...string) *demoServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &demoServer{addr: addr, stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, exited: make(chan struct{})}
	m := &Main{Stdin: strings.NewReader(""), Stdout: d.stdout, Stderr: d.stderr, Getenv: func(string) string { return "" }}
	args := append([]string{"--data-dir", dir, "serve", "--demo", "--http", addr}, flags...)
	go func() {
		d.err = errors.Join(m.Run(ctx, args), m.Close())
		close(d.exited)
	}()
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-d.exited:
			t.Fatalf("serve exited early: %v\n%s", d.err, d.stderr.String())
		default:
		}
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("http://%s/healthz did not answer in time", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the server down and returns serve's error. It may be called
// more than once.
func (d *demoServer) stop() error {
	d.cancel()
	<-d.exited
	return d.err
}

// ownerKey and agentKey are the keys the first run printed.
func (d *demoServer) ownerKey(t *testing.T) string { return d.firstRunKey(t, 0) }
func (d *demoServer) agentKey(t *testing.T) string { return d.firstRunKey(t, 1) }

func (d *demoServer) firstRunKey(t *testing.T, i int) string {
	t.Helper()
	keys := keyRE.FindAllString(d.stdout.String(), -1)
	if len(keys) < 2 {
		t.Fatalf("serve --demo printed %d keys:\n%s", len(keys), d.stdout.String())
	}
	return keys[i]
}

func TestServeRefusesPlainHTTPOffLoopback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := run(t, dir, "serve", "--demo", "--scale", "50", "--http", "0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Errorf("serve on 0.0.0.0 without TLS: %v", err)
	}
}

func TestServeStdioNeedsValidKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := run(t, dir, "serve", "--demo", "--scale", "50", "--stdio"); err == nil || !strings.Contains(err.Error(), "SIGNALSMITH_API_KEY") {
		t.Errorf("stdio without a key: %v", err)
	}
}

// conformanceEnabled reports whether the npm-installed MCP peers are there.
// scripts/test installs them and sets SIGNALSMITH_E2E=1; then they must be.
func conformanceEnabled(t *testing.T) bool {
	if os.Getenv("SIGNALSMITH_E2E") == "" {
		t.Log("SIGNALSMITH_E2E unset: the conformance suite and the Inspector CLI are not run (scripts/test runs them)")
		return false
	}
	return true
}

// runConformance runs the official conformance suite's generic scenarios
// through a proxy that adds the key, since the suite sends no credentials.
func runConformance(t *testing.T, target, key string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(&url.URL{Scheme: u.Scheme, Host: u.Host})
		r.Out.Host = r.In.Host // keep the Host the suite sends: the rebinding check reads it
		r.Out.Header.Set("Authorization", "Bearer "+key)
	}}
	ps := httptest.NewServer(proxy)
	defer ps.Close()
	bin := filepath.Join(repoRoot(t), "e2e", "node_modules", ".bin", "conformance")
	for _, scenario := range []string{"server-initialize", "ping", "tools-list", "dns-rebinding-protection"} {
		cmd := exec.Command(bin, "server", "--url", ps.URL+"/mcp", "--scenario", scenario)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.Contains(string(out), "FAILURE") || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("conformance scenario %s failed (%v):\n%s", scenario, err, out)
		}
	}
}

// runInspector lists the tools with the MCP Inspector's CLI mode.
func runInspector(t *testing.T, target, key string) {
	t.Helper()
	bin := filepath.Join(repoRoot(t), "e2e", "node_modules", ".bin", "mcp-inspector")
	cmd := exec.Command(bin, "--cli", target, "--method", "tools/list", "--header", "Authorization: Bearer "+key)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"preview_model"`) {
		t.Errorf("inspector tools/list (%v):\n%s", err, out)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func mcpClient(t *testing.T, endpoint, key string) *client.Client {
	t.Helper()
	return servertest.Client(t, endpoint, key, "cmd-test", "1")
}

// callTool and tryCallTool are servertest's, by the names these tests use.
var (
	callTool    = servertest.Call
	tryCallTool = servertest.TryCall
)

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// syncBuffer is an output sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWorkspaceKillSwitch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, _, err := run(t, dir, "workspace", "status")
	if err != nil || !strings.Contains(out, "AI writes allowed") {
		t.Fatalf("status: %q %v", out, err)
	}
	if _, _, err := run(t, dir, "workspace", "freeze"); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, dir, "workspace", "status"); !strings.Contains(out, "frozen") {
		t.Fatalf("after freeze: %q", out)
	}
	if _, _, err := run(t, dir, "workspace", "unfreeze"); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, dir, "workspace", "status"); !strings.Contains(out, "allowed") {
		t.Fatalf("after unfreeze: %q", out)
	}
	out, _, err = run(t, dir, "audit", "tail", "--json")
	if err != nil || strings.Count(out, `"ai_writes_frozen set to`) != 2 || !strings.Contains(out, `"source":"CLI"`) {
		t.Errorf("the kill switch changes are not audited:\n%s", out)
	}
	if _, _, err := run(t, dir, "workspace", "melt"); err == nil {
		t.Error("unknown workspace command succeeded")
	}
}

func TestServeRefusesBadPolicyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	bad := "policies:\n  - id: a\n    type: deny\n    resources: [model]\n    operations: [any]\n    message: m\n    condition: facts.x >>> 1\n"
	if err := os.WriteFile(policy, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, dir, "serve", "--demo", "--scale", "50", "--policy", policy)
	if err == nil || !strings.Contains(err.Error(), policy+":7: policy a: condition:") {
		t.Fatalf("bad policy file: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "signalsmith.db")); !os.IsNotExist(statErr) {
		t.Error("startup wrote the data directory before refusing the policy file")
	}
	if _, _, err := run(t, dir, "serve", "--policy", filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "--policy") {
		t.Errorf("missing policy file: %v", err)
	}
}

// TestServeDemoWithRelativeDataDir runs the README's first command as a
// newcomer does: the default data directory, relative to the working
// directory. Not parallel: it changes the working directory.
func TestServeDemoWithRelativeDataDir(t *testing.T) {
	t.Chdir(t.TempDir())
	d := startDemo(t, "signalsmith-data", freeAddr(t), "--scale", "50")
	c := mcpClient(t, "http://"+d.addr+"/mcp", d.agentKey(t))
	if res := callTool(t, c, "preview_model", map[string]any{"model": "customers", "limit": 3}); res.IsError {
		t.Fatalf("preview_model: %v", res.Content)
	}
	if _, err := os.Stat(filepath.Join("signalsmith-data", "warehouse", "analytics.db")); err != nil {
		t.Errorf("the demo warehouse is not under the relative data directory: %v", err)
	}
}
