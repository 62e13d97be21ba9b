package server_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// Audit field limits as a reader of the trail sees them (store.BoundAudit).
const (
	maxAuditTool   = 128
	maxAuditClient = 256
	maxAuditArgs   = 16 << 10
)

// TestAttackerKeysNeverReachTheAuditOrTheQueue plants a real API key (a
// human admin's) wherever an agent can put text that the audit trail or the
// approval queue records: argument names at any depth, the tool name, the
// MCP client's name and version, the arguments of a call that waits for a
// human. The key's secret must never be stored: not in the audit events,
// the metadata database's files, the warehouse copy of the trail after
// shipping, the logs, nor on the approval page, its API or the agent's
// approval tools. The events must still record the call, with the key cut
// to its public prefix.
func TestAttackerKeysNeverReachTheAuditOrTheQueue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// act makes the call with the planted key; it returns what the
		// agent was answered.
		act func(t *testing.T, e *env, agentKey, planted string) string
		// queued: the call is one the policies send to a human.
		queued bool
		// policies, when set, replace the shipped defaults.
		policies string
	}{
		{name: "key as an argument name", act: func(t *testing.T, e *env, agentKey, planted string) string {
			return text(call(t, e.client(t, agentKey), "list_tables", map[string]any{planted: "x"}))
		}},
		{name: "key as a nested argument name", act: func(t *testing.T, e *env, agentKey, planted string) string {
			return text(call(t, e.client(t, agentKey), "get_model", map[string]any{
				"model": "customers", "options": map[string]any{"deeper": []any{map[string]any{planted: 1}}},
			}))
		}},
		{name: "key in a tool name", act: func(t *testing.T, e *env, agentKey, planted string) string {
			_, err := tryCall(e.client(t, agentKey), "run_"+planted, map[string]any{})
			if err == nil {
				t.Fatal("an unknown tool was called without an error")
			}
			return ""
		}},
		{name: "key as the MCP client name", act: func(t *testing.T, e *env, agentKey, planted string) string {
			return text(call(t, servertest.Client(t, e.url, agentKey, planted, "1.0"), "list_models", nil))
		}},
		{name: "key as the MCP client version", act: func(t *testing.T, e *env, agentKey, planted string) string {
			return text(call(t, servertest.Client(t, e.url, agentKey, "some-agent", planted), "list_models", nil))
		}},
		{name: "key as the value of a queued delete_model", queued: true, act: func(t *testing.T, e *env, agentKey, planted string) string {
			return queueRefused(t, e.client(t, agentKey), map[string]any{"model": planted})
		}},
		{name: "key as an argument name of a queued delete_model", queued: true, act: func(t *testing.T, e *env, agentKey, planted string) string {
			return queueRefused(t, e.client(t, agentKey), map[string]any{"model": "customers", planted: true})
		}},
		{name: "key in the description of a queued create_audience", queued: true, policies: audiencesNeedApproval,
			act: func(t *testing.T, e *env, agentKey, planted string) string {
				res := call(t, e.client(t, agentKey), "create_audience", map[string]any{"name": "pro", "description": "ask " + planted,
					"definition": map[string]any{"model": "customers", "conditions": map[string]any{"column": "plan", "operator": "equals", "value": "pro"}}})
				if msg := text(res); !res.IsError || !strings.Contains(msg, "remove the key") || strings.Contains(msg, "approval_id") {
					t.Errorf("create_audience with a key in its description: %v %q, want a refusal that says to remove the key", res.IsError, msg)
				}
				if n := e.counts(t)["approvals"]; n != 0 {
					t.Errorf("%d approvals stored", n)
				}
				return text(res)
			}},
		{name: "key nested deep in a queued delete_model", queued: true, act: func(t *testing.T, e *env, agentKey, planted string) string {
			return queueRefused(t, e.client(t, agentKey), map[string]any{"model": "customers", "note": map[string]any{"why": []any{"see " + planted}}})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []func(*server.Config)
			if tc.policies != "" {
				opts = append(opts, withPolicies(t, tc.policies))
			}
			e := setup(t, opts...)
			agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
			planted, _ := e.key(t, "admin-1", "admin", store.KindUser, nil)
			secret, prefix := planted[16:], planted[:15]
			before := len(e.audit(t))

			answer := tc.act(t, e, agentKey, planted)
			if strings.Contains(answer, secret) {
				t.Errorf("the answer echoes the planted key: %s", answer)
			}
			evs := e.audit(t)[before:]
			dump, err := json.Marshal(evs)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 || !strings.Contains(string(dump), prefix+"_[redacted]") {
				t.Errorf("the call's audit event does not record the key cut to its prefix: %s", dump)
			}

			places := map[string]string{
				"audit events":        string(dump),
				"metadata store":      readAll(t, filepath.Join(e.dir, "signalsmith.db")) + readAll(t, filepath.Join(e.dir, "signalsmith.db-wal")),
				"warehouse copy":      shipAudit(t, e),
				"logs":                e.logs.String(),
				"approval API":        approvalAPI(t, e, planted),
				"approval page":       approvalPage(t, e, planted),
				"agent approval list": text(call(t, e.client(t, agentKey), "list_approvals", map[string]any{})),
			}
			for where, s := range places {
				if strings.Contains(s, secret) {
					t.Errorf("the planted key's secret is in the %s", where)
				}
			}
			if tc.queued && !strings.Contains(places["warehouse copy"], prefix+"_[redacted]") {
				t.Error("the refused queued call is not in the warehouse copy of the audit trail")
			}
		})
	}
}

// audiencesNeedApproval sends every AI audience creation to a human.
const audiencesNeedApproval = `policies:
  - id: ai-audience-review
    type: require_approval
    resources: [audience]
    operations: [create]
    sources: [AI]
    message: every new audience is reviewed
`

// queueRefused calls delete_model, which the default policies send to a
// human, with arguments that carry a key: the call must be refused before
// anything is queued, with an error that tells the agent what to do.
func queueRefused(t *testing.T, c *client.Client, args map[string]any) string {
	t.Helper()
	res := call(t, c, "delete_model", args)
	msg := text(res)
	// Refused before a human sees it: for the key (ErrArgsRefused), or
	// earlier, because a call with unknown arguments or an unknown model
	// cannot run and is never queued.
	if !res.IsError || strings.Contains(msg, "approval_id") ||
		!(strings.Contains(msg, "remove the key") || strings.Contains(msg, "cannot run, so it was not queued")) {
		t.Errorf("delete_model with a key in its arguments: %v %q, want a refusal", res.IsError, msg)
	}
	return msg
}

// TestQueuedCallsStillWaitForAHuman is the ordinary work beside the
// attacks above: a delete without a key is queued, and its page, API and
// get_approval show exactly the arguments that will run.
func TestQueuedCallsStillWaitForAHuman(t *testing.T) {
	t.Parallel()
	e := setup(t)
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "admin-1", "admin", store.KindUser, nil)
	c := e.client(t, agentKey)
	var q struct {
		ApprovalID string `json:"approval_id"`
	}
	// A name that starts like a key but is not one is no reason to refuse.
	var mc modelChange
	structured(t, call(t, c, "create_model", map[string]any{"name": "ss_not_a_key", "table": "analytics.orders", "primary_key": "order_id"}), &mc)
	structured(t, call(t, c, "delete_model", map[string]any{"model": "ss_not_a_key"}), &q)
	if q.ApprovalID == "" {
		t.Fatal("a plain delete_model was not queued")
	}
	if a := e.approval(t, q.ApprovalID); string(a.Args) != `{"model":"`+mc.Model.ID+`"}` {
		t.Errorf("queued args = %s, want the model's id", a.Args)
	}
	if got := text(call(t, c, "get_approval", map[string]any{"approval": q.ApprovalID})); !strings.Contains(got, "ss_not_a_key") {
		t.Errorf("get_approval does not show the arguments: %s", got)
	}
	if got := approvalAPI(t, e, adminKey); !strings.Contains(got, q.ApprovalID) || !strings.Contains(got, "ss_not_a_key") {
		t.Errorf("the approval API does not show the queued call: %s", got)
	}
}

// TestOversizedFieldsAreStoredBounded sends fields far larger than any
// real call needs: the audit event records the call, each field cut to
// its limit with a mark that something was cut.
func TestOversizedFieldsAreStoredBounded(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("a", 200<<10)
	manyArgs := map[string]any{}
	for i := range 3000 {
		manyArgs[strings.Repeat("k", 40)+string(rune('a'+i%26))+strings.Repeat("x", i%97)+"_"+strconv.Itoa(i)] = strings.Repeat("v", 200)
	}
	cases := []struct {
		name  string
		act   func(t *testing.T, e *env, key string)
		field func(ev store.AuditEvent) string
		max   int
	}{
		{"200 KB unknown tool name", func(t *testing.T, e *env, key string) {
			_, _ = tryCall(e.client(t, key), huge, map[string]any{})
		}, func(ev store.AuditEvent) string { return ev.Tool }, maxAuditTool},
		{"200 KB client name", func(t *testing.T, e *env, key string) {
			call(t, servertest.Client(t, e.url, key, huge, "1"), "list_models", nil)
		}, func(ev store.AuditEvent) string { return ev.Client }, maxAuditClient},
		{"200 KB argument name", func(t *testing.T, e *env, key string) {
			call(t, e.client(t, key), "list_tables", map[string]any{huge: 1})
		}, func(ev store.AuditEvent) string { return mustJSON(t, ev.Args) }, maxAuditArgs},
		{"3,000 arguments", func(t *testing.T, e *env, key string) {
			call(t, e.client(t, key), "list_tables", manyArgs)
		}, func(ev store.AuditEvent) string { return mustJSON(t, ev.Args) }, maxAuditArgs},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
			before := len(e.audit(t))
			tc.act(t, e, key)
			evs := e.audit(t)[before:]
			if len(evs) == 0 {
				t.Fatal("the call left no audit event")
			}
			got := tc.field(evs[len(evs)-1])
			if len(got) > tc.max {
				t.Errorf("stored field is %d bytes, want at most %d", len(got), tc.max)
			}
			if !strings.Contains(got, "[truncated]") && !strings.Contains(got, `"_truncated":true`) {
				t.Errorf("the cut field does not say it was cut: %.200s", got)
			}
		})
	}
}

// shipAudit ships the store's audit trail to the warehouse as serve does
// (the shipper drains at stop) and returns the bytes of the warehouse's
// audit database files.
func shipAudit(t *testing.T, e *env) string {
	t.Helper()
	sink, err := sqlite.OpenAuditSink(e.whDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	shipper, err := server.NewShipper(server.ShipperConfig{Outbox: e.db, Sink: sink, Poll: time.Hour, Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := shipper.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := e.db.AuditShipping(context.Background()); err != nil || s.Backlog != 0 {
		t.Fatalf("after shipping: %+v, %v", s, err)
	}
	path := filepath.Join(e.whDir, sqlite.AuditFile)
	return readAll(t, path) + readAll(t, path+"-wal")
}

// approvalAPI returns what the JSON API lists of every approval, and the
// detail of each, as a person with key reads them.
func approvalAPI(t *testing.T, e *env, key string) string {
	t.Helper()
	status, out := api(t, e.http.URL, "GET", "/api/v1/approvals?state=all", key, "")
	if status != 200 {
		t.Fatalf("approval API: %d %v", status, out)
	}
	var b strings.Builder
	b.WriteString(mustJSON(t, out))
	items, _ := out["approvals"].([]any)
	for _, it := range items {
		id, _ := it.(map[string]any)["id"].(string)
		_, detail := api(t, e.http.URL, "GET", "/api/v1/approvals/"+id, key, "")
		b.WriteString(mustJSON(t, detail))
	}
	return b.String()
}

// approvalPage returns the web queue's list page as a person with key sees
// it.
func approvalPage(t *testing.T, e *env, key string) string {
	t.Helper()
	w := newWeb(t, e.http.URL, nil)
	w.signIn(key)
	_, body := w.get("/approvals?state=all")
	return body
}
