package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
)

// TestPIICommands classifies warehouse columns from the command line while
// a server runs: the running server applies a change on the next call, bad
// input is refused whole with a clear error, and every change is audited.
func TestPIICommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := startDemo(t, dir, freeAddr(t), "--scale", "100")
	agent := servertest.Client(t, "http://"+d.addr+"/mcp", d.agentKey(t), "pii-test", "1")
	emails := func() []any {
		t.Helper()
		var p struct {
			Rows []map[string]any `json:"rows"`
		}
		servertest.Structured(t, servertest.Call(t, agent, "preview_model", map[string]any{"model": "customers", "limit": 20}), &p)
		var out []any
		for _, r := range p.Rows {
			if v := r["email"]; v != nil {
				out = append(out, v)
			}
		}
		return out
	}
	for _, v := range emails() {
		if v != "***" {
			t.Fatalf("demo email shown as %v", v)
		}
	}

	out, _, err := run(t, dir, "pii", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Columns []store.PIIClass }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	levels := map[string]string{}
	for _, c := range list.Columns {
		levels[c.Column] = c.Level
	}
	if levels["analytics.customers.email"] != "redacted" || levels["analytics.customers.notes"] != "blocked" ||
		levels["analytics.customers.birth_date"] != "sync_only" || levels["analytics.orders.amount"] != "none" {
		t.Errorf("the demo's classification = %v", levels)
	}

	// Bad input: nothing is written, and the error says what is wrong.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("analytics.customers.email: none\nanalytics.customers.phone: public\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pii", "set", "analytics.customers.emial", "none"}, "has no column emial"},
		{[]string{"pii", "set", "analytics.nothing.email", "none"}, "no table analytics.nothing"},
		{[]string{"pii", "set", "customers.email", "none"}, "not schema.table.column"},
		{[]string{"pii", "set", "analytics.customers.email", "public"}, `"public" is not a PII level`},
		{[]string{"pii", "set", "analytics.customers.email", "none", "analytics.customers.notes", "secret"}, `"secret" is not a PII level`},
		{[]string{"pii", "import", bad}, bad + ":2:"},
	} {
		if _, _, err := run(t, dir, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	for _, v := range emails() {
		if v != "***" {
			t.Fatalf("a refused classification changed what agents see: email %v", v)
		}
	}

	// A person loosens email: the running server shows it on the next call.
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("analytics.customers.email: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run(t, dir, "pii", "import", good); err != nil || !strings.Contains(out, "Classified 1 columns") {
		t.Fatalf("pii import: %v %s", err, out)
	}
	shown := emails()
	if len(shown) == 0 || shown[0] == "***" || !strings.Contains(shown[0].(string), "@") {
		t.Errorf("after classifying email none, the preview shows %v", shown)
	}
	// And classifies it back.
	if _, _, err := run(t, dir, "pii", "set", "analytics.customers.email", "redacted"); err != nil {
		t.Fatal(err)
	}
	for _, v := range emails() {
		if v != "***" {
			t.Fatalf("after classifying email redacted again, it shows as %v", v)
		}
	}

	out, _, err = run(t, dir, "audit", "tail", "-n", "50", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var executed, failed int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev store.AuditEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if ev.ResourceType == "pii" && ev.Source == store.SourceCLI && ev.Action == "governance.manage" {
			switch ev.Decision {
			case store.DecisionExecuted:
				executed++
			case store.DecisionFailed:
				failed++
			}
		}
	}
	if executed != 2 || failed != 6 {
		t.Errorf("%d executed and %d failed classification events, want 2 and 6", executed, failed)
	}
}
