package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// readExport decodes a JSONL export the way a store reads events back
// (numbers as json.Number), so each event's hash can be recomputed.
func readExport(t *testing.T, data []byte) []store.AuditEvent {
	t.Helper()
	var evs []store.AuditEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e store.AuditEvent
		if err := store.DecodeJSON(sc.Bytes(), &e); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs
}

func TestAuditCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, _, err := run(t, dir, "keys", "create", "--name", "alice", "--role", "admin", "--email", "alice@example.test", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var created createdKey
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, dir, "keys", "rotate", created.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, dir, "keys", "revoke", created.ID); err == nil {
		t.Fatal("revoking a rotated (revoked) key succeeded")
	}
	if _, _, err := run(t, dir, "workspace", "freeze"); err != nil {
		t.Fatal(err)
	}

	// Every CLI operation is one event, with source CLI and actor cli,
	// the failed revocation included.
	exported := filepath.Join(t.TempDir(), "audit.jsonl")
	if _, _, err := run(t, dir, "audit", "export", "--output", exported); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(exported); fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %o, want 600", fi.Mode().Perm())
	}
	evs := readExport(t, data)
	var decisions []string
	for i, e := range evs {
		decisions = append(decisions, e.Decision)
		if e.Source != store.SourceCLI || e.ActorID != actorCLI || e.ActorType != actorCLI || e.Seq != int64(i+1) {
			t.Errorf("event %d = %+v", i, e)
		}
		if h, err := store.AuditHash(e); err != nil || h != e.Hash {
			t.Errorf("exported event %d does not hash to its recorded hash", e.Seq)
		}
	}
	want := []string{store.DecisionExecuted, store.DecisionExecuted, store.DecisionFailed, store.DecisionExecuted}
	if strings.Join(decisions, ",") != strings.Join(want, ",") {
		t.Fatalf("decisions %v, want %v", decisions, want)
	}
	if evs[0].ResourceType != "api_key" || evs[0].ResourceID != created.ID || !strings.Contains(evs[0].Result, created.Prefix+"_****") ||
		evs[1].Args["command"] != "keys rotate" || !strings.Contains(evs[2].Reason, "already revoked") || evs[3].ResourceType != "workspace" {
		t.Errorf("events = %+v", evs)
	}
	if strings.Contains(string(data), created.Key[16:]) {
		t.Error("the export holds a key secret")
	}

	var csvOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &csvOut, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
	if err := m.Run(context.Background(), []string{"--data-dir", dir, "audit", "export", "--format", "csv", "--since", evs[1].At.Format(time.RFC3339Nano)}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	rows, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil || len(rows) != 4 || rows[0][0] != "seq" || rows[1][0] != "2" || rows[3][len(rows[3])-1] != evs[3].Hash {
		t.Errorf("csv export since the second event: %v (%v)", rows, err)
	}
	if _, _, err := run(t, dir, "audit", "export", "--format", "xml"); !errors.Is(err, errUsage) {
		t.Errorf("export --format xml: %v", err)
	}

	out, _, err = run(t, dir, "audit", "status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st store.AuditShipping
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Backlog != 4 || st.LastSeq != 0 {
		t.Errorf("status before any shipping = %s (%v)", out, err)
	}
	if out, _, err = run(t, dir, "audit", "status"); err != nil || !strings.Contains(out, "Backlog: 4 events") || !strings.Contains(out, "none yet") {
		t.Errorf("status: %v\n%s", err, out)
	}

	out, _, err = run(t, dir, "audit", "verify")
	if err != nil || !strings.Contains(out, "store signalsmith.db audit_events: OK, 4 events") || !strings.Contains(out, "4 not shipped yet") {
		t.Fatalf("verify: %v\n%s", err, out)
	}

	// Ship, as serve does, and check the warehouse copy too.
	whDir := filepath.Join(dir, "warehouse")
	if err := os.MkdirAll(whDir, 0o700); err != nil {
		t.Fatal(err)
	}
	func() {
		ctx := context.Background()
		sdb, err := sqlite.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer sdb.Close()
		sink, err := sqlite.OpenAuditSink(whDir)
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		shipper, err := server.NewShipper(server.ShipperConfig{Outbox: sdb, Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := shipper.Ship(ctx); err != nil || n != 4 {
			t.Fatalf("shipped %d events: %v", n, err)
		}
	}()
	out, _, err = run(t, dir, "audit", "verify")
	if err != nil || !strings.Contains(out, "warehouse cdp_audit.audit_events: OK, 4 events") || !strings.Contains(out, "0 not shipped yet") {
		t.Fatalf("verify after shipping: %v\n%s", err, out)
	}
	if out, _, err = run(t, dir, "audit", "status"); err != nil || !strings.Contains(out, "Backlog: 0 events") ||
		!strings.Contains(out, "Last shipped: event "+evs[3].ID+" (seq 4") {
		t.Errorf("status after shipping: %v\n%s", err, out)
	}
	wh, err := sql.Open("sqlite", filepath.Join(whDir, "cdp_audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	if _, err := wh.Exec(`UPDATE audit_events SET decision = 'executed' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, dir, "audit", "verify")
	if !errors.Is(err, errChainBroken) || !strings.Contains(out, "warehouse cdp_audit.audit_events: BROKEN at event "+evs[2].ID+" (seq 3): changed") ||
		!strings.Contains(out, "store signalsmith.db audit_events: OK") {
		t.Fatalf("verify after changing the warehouse copy: %v\n%s", err, out)
	}
	if _, err := wh.Exec(`UPDATE audit_events SET decision = 'failed' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}

	// Tampering with the store is named by verify, which then fails.
	db, err := sql.Open("sqlite", filepath.Join(dir, "signalsmith.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`DROP TRIGGER audit_events_no_update`, `UPDATE audit_events SET result = 'nothing happened' WHERE seq = 2`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err = run(t, dir, "audit", "verify")
	if !errors.Is(err, errChainBroken) || !strings.Contains(out, "BROKEN at event "+evs[1].ID+" (seq 2): changed") {
		t.Errorf("verify after tampering: %v\n%s", err, out)
	}
}

// secretsIn returns the secrets of every key-shaped string in text.
var secretRE = regexp.MustCompile(`ss_[a-z2-7]{12}_([a-z2-7]{52})`)

// TestNoSecretReachesStorageExportsOrLogs runs the server, uses keys in every
// way a caller might leak them (the bearer header, a wrong secret, keys and
// headers inside tool arguments, a session cookie), ships the audit trail to
// the warehouse, exports it, and then searches every file of the data
// directory (databases, WAL files, the warehouse copy), the exports and the
// logs for the secrets.
func TestNoSecretReachesStorageExportsOrLogs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := startDemo(t, dir, freeAddr(t), "--scale", "100")
	addr, stderr := d.addr, d.stderr
	ownerKey, agentKey := d.ownerKey(t), d.agentKey(t)
	out, _, err := run(t, dir, "keys", "create", "--name", "ci-bot", "--role", "member", "--kind", "agent", "--owner", "demo-owner", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var extra createdKey
	if err := json.Unmarshal([]byte(out), &extra); err != nil {
		t.Fatal(err)
	}
	wrong := agentKey[:16] + strings.Repeat("q", 52)
	const cookie = "cookievalue7hq2xk"
	secrets := []string{ownerKey[16:], agentKey[16:], extra.Key[16:], wrong[16:], cookie}

	c := mcpClient(t, "http://"+addr+"/mcp", agentKey)
	for _, args := range []map[string]any{
		{"model": ownerKey},
		{"model": "Authorization: Bearer " + extra.Key},
		{"model": "customers", "authorization": "Bearer " + agentKey, "cookie": "signalsmith_session=" + cookie},
		{"model": "x", "note": "Cookie: session=" + cookie + "; Set-Cookie: b=" + cookie},
	} {
		if _, err := tryCallTool(c, "get_model", args); err != nil {
			t.Fatal(err)
		}
	}
	// A wrong secret, and a cookie on the MCP endpoint and the web queue.
	for _, target := range []struct{ path, auth string }{{"/mcp", "Bearer " + wrong}, {"/approvals", ""}, {"/mcp", "Bearer " + agentKey}} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+target.path, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_models","arguments":{}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Cookie", "signalsmith_session="+cookie)
		if target.auth != "" {
			req.Header.Set("Authorization", target.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Wait until the warehouse has everything, then export.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, err := run(t, dir, "audit", "status", "--json")
		var st store.AuditShipping
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Backlog == 0 && st.LastSeq > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox did not drain: %s %v", out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	exports := t.TempDir()
	for _, f := range []string{"jsonl", "csv"} {
		if _, _, err := run(t, dir, "audit", "export", "--format", f, "--output", filepath.Join(exports, "audit."+f)); err != nil {
			t.Fatal(err)
		}
	}
	if out, _, err := run(t, dir, "audit", "verify"); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	searched := 0
	check := func(name string, data []byte) {
		searched++
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds the secret %s…", name, s[:6])
			}
		}
		for _, m := range secretRE.FindAllSubmatch(data, -1) {
			t.Errorf("%s holds a whole key ending in …%s", name, m[1][48:])
		}
		if bytes.Contains(bytes.ToLower(data), []byte("bearer ss_")) {
			t.Errorf("%s holds an Authorization header value", name)
		}
	}
	for _, root := range []string{dir, exports} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			check(path, data)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check("the server's log", []byte(stderr.String()))
	if searched < 6 {
		t.Errorf("searched only %d files and logs", searched)
	}
	if !strings.Contains(stderr.String(), "listening") {
		t.Error("the log is not the server's log")
	}
	if _, err := os.Stat(filepath.Join(dir, "warehouse", "cdp_audit.db")); err != nil {
		t.Errorf("no warehouse copy was searched: %v", err)
	}
}
