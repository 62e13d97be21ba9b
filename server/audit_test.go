package server_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

type auditSearch struct {
	Events []store.AuditEvent `json:"events"`
	Count  int                `json:"count"`
	More   bool               `json:"more"`
}

func TestSearchAudit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ownerKey, owner := e.key(t, "alice", "owner", store.KindUser, nil)
	agentKey, agent := e.key(t, "bot", "member", store.KindAgent, nil)
	oc, ac := e.client(t, ownerKey), e.client(t, agentKey)
	before := time.Now().UTC()
	call(t, ac, "get_model", map[string]any{"model": "customers"})
	call(t, ac, "get_model", map[string]any{"model": "nope " + agentKey})
	call(t, ac, "list_models", map[string]any{})

	// The agent's role (member) has no audit.read: not listed, denied.
	tools, err := ac.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(tools.Tools, func(tl mcp.Tool) bool { return tl.Name == "search_audit" }) {
		t.Error("search_audit is listed for a role without audit.read")
	}
	if res := call(t, ac, "search_audit", map[string]any{}); !res.IsError || !strings.Contains(text(res), "audit.read") {
		t.Errorf("member calling search_audit: %s", text(res))
	}

	var got auditSearch
	structured(t, call(t, oc, "search_audit", map[string]any{"actor": "bot", "tool": "get_model", "source": "ai"}), &got)
	if got.Count != 2 || got.More {
		t.Fatalf("search by actor and tool: %+v", got)
	}
	for _, ev := range got.Events {
		if ev.ActorID != agent.MemberID || ev.Tool != "get_model" || ev.Source != store.SourceAI || ev.Hash == "" || ev.Seq == 0 {
			t.Errorf("event %+v", ev)
		}
	}
	// Newest first; the failed lookup's key is cut to its prefix.
	if got.Events[0].Decision != store.DecisionFailed || strings.Contains(got.Events[0].Args["model"].(string), agentKey[16:]) ||
		strings.Contains(got.Events[0].Reason, agentKey[16:]) {
		t.Errorf("newest event = %+v", got.Events[0])
	}
	structured(t, call(t, oc, "search_audit", map[string]any{"decision": "denied", "since": before.Format(time.RFC3339Nano)}), &got)
	if got.Count != 1 || got.Events[0].Tool != "search_audit" || got.Events[0].KeyPrefix != agent.Prefix {
		t.Errorf("search for denials = %+v", got)
	}
	structured(t, call(t, oc, "search_audit", map[string]any{"until": before.Add(-time.Hour).Format(time.RFC3339)}), &got)
	if got.Count != 0 {
		t.Errorf("search before the calls found %d events", got.Count)
	}
	structured(t, call(t, oc, "search_audit", map[string]any{"actor": owner.Prefix, "limit": 1}), &got)
	if got.Count != 1 || !got.More || got.Events[0].ActorName != "alice" {
		t.Errorf("limit 1: %+v", got)
	}
	for args, want := range map[string]map[string]any{
		`"source"`:           {"source": "MCP"},
		`"decision"`:         {"decision": "maybe"},
		`"since"`:            {"since": "yesterday"},
		`since must be`:      {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
		`"limit"`:            {"limit": 500},
		`unknown argument`:   {"workspace": "other"},
		`expected a string`:  {"actor": 3},
		`RFC 3339 time such`: {"until": "2026-13-01"},
	} {
		if res := call(t, oc, "search_audit", want); !res.IsError || !strings.Contains(text(res), args) {
			t.Errorf("search_audit(%v) = %q, want an error about %s", want, text(res), args)
		}
	}
}

func TestWriteToolEventCommitsWithTheChange(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, k := e.key(t, "modeler", "member", store.KindAgent, nil)
	c := e.client(t, key)
	before := len(e.audit(t))
	res := call(t, c, "create_model", map[string]any{
		"name": "plain_orders", "table": "analytics.orders", "primary_key": "order_id",
		"columns": []map[string]any{{"name": "order_id", "pii": "none"}},
	})
	if res.IsError {
		t.Fatalf("create_model: %s", text(res))
	}
	m, err := e.db.GetModel(context.Background(), e.ws.ID, "plain_orders")
	if err != nil {
		t.Fatal(err)
	}
	evs := e.audit(t)
	if len(evs) != before+1 {
		t.Fatalf("%d events for one call", len(evs)-before)
	}
	ev := evs[len(evs)-1]
	if ev.Decision != store.DecisionExecuted || ev.ResourceID != m.ID || ev.Tool != "create_model" || ev.KeyPrefix != k.Prefix ||
		ev.Action != "models.create" || ev.LatencyMS <= 0 {
		t.Errorf("event of the change = %+v", ev)
	}
	// A write that fails writes its failure after the fact, once.
	res = call(t, c, "create_model", map[string]any{"name": "plain_orders", "table": "analytics.orders", "primary_key": "order_id"})
	if !res.IsError {
		t.Fatal("a second model of the same name was created")
	}
	if evs := e.audit(t); len(evs) != before+2 || evs[len(evs)-1].Decision != store.DecisionFailed {
		t.Errorf("failed write: %d events, last %+v", len(evs)-before, evs[len(evs)-1])
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent-zqx", "member", store.KindAgent, nil)
	c := e.client(t, key)
	call(t, c, "list_models", map[string]any{})
	call(t, c, "get_model", map[string]any{"model": "nope"})
	resp, err := http.Get(e.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := string(body)
	for _, want := range []string{
		`signalsmith_decisions_total{effect="allowed",source="AI"}`,
		`signalsmith_decisions_total{effect="failed",source="AI"} 1`,
		`signalsmith_tool_call_duration_seconds_bucket{tool="list_models",le=`,
		`signalsmith_tool_call_duration_seconds_count{tool="get_model"} 1`,
		"signalsmith_audit_backlog ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if resp.StatusCode != http.StatusOK || strings.Contains(out, key[:15]) || strings.Contains(out, "agent-zqx") {
		t.Errorf("/metrics: status %d, or it names a key or an actor", resp.StatusCode)
	}
}

// waitBacklog waits until the outbox holds want events at most.
func waitBacklog(t *testing.T, db *sqlite.DB, want int64) store.AuditShipping {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := db.AuditShipping(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if s.Backlog <= want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog still %d, want at most %d: %+v", s.Backlog, want, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestShipperSurvivesWarehouseOutage(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "bot", "member", store.KindAgent, nil)
	c := e.client(t, key)
	sink, err := sqlite.OpenAuditSink(e.whDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	shipper, err := server.NewShipper(server.ShipperConfig{Outbox: e.db, Sink: sink, Poll: 50 * time.Millisecond,
		Linger: time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Registerer: e.srv.Metrics()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- shipper.Run(ctx) }()

	for range 5 {
		call(t, c, "list_models", map[string]any{})
	}
	waitBacklog(t, e.db, 0)

	// The warehouse goes away: its audit file is replaced by a directory
	// (file modes do not stop root, a directory does).
	path := filepath.Join(e.whDir, sqlite.AuditFile)
	if err := os.Rename(path, path+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if res := call(t, c, "get_model", map[string]any{"model": "customers"}); res.IsError {
			t.Fatalf("call %d failed while the warehouse was unavailable: %s", i, text(res))
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	var s store.AuditShipping
	for {
		if s, err = e.db.AuditShipping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s.Failures >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s.Backlog < 10 || s.Failures < 2 || s.LastError == "" || s.LastErrorAt == nil {
		t.Fatalf("while unavailable: %+v, want a backlog of the 10 calls and failures recorded", s)
	}

	// It comes back: the backlog drains, in order, with nothing twice.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	s = waitBacklog(t, e.db, 0)
	if s.Failures != 0 || s.LastError != "" {
		t.Errorf("after recovery: %+v", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("shipper stopped with %v", err)
	}
	read := func(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
		return sink.ReadAuditEvents(ctx, store.AuditTableEvents, f)
	}
	rep, err := store.VerifyCopy(context.Background(), e.db.Audit, read, false)
	if err != nil || rep.Break != nil || rep.Behind != 0 || rep.Events != int64(len(e.audit(t))) {
		t.Errorf("warehouse copy = %+v, %v; store has %d events", rep, err, len(e.audit(t)))
	}
}

func TestShipperDrainsOnStop(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sink, err := sqlite.OpenAuditSink(e.whDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	// A long poll and linger: only the drain at stop can ship in time.
	shipper, err := server.NewShipper(server.ShipperConfig{Outbox: e.db, Sink: sink, Poll: time.Hour, Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- shipper.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	for range 3 {
		if err := e.db.AppendAudit(context.Background(), store.AuditEvent{Source: store.SourceSystem, Action: "test", Decision: store.DecisionExecuted}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s, _ := e.db.AuditShipping(context.Background()); s.Backlog != 0 || s.Shipped < 3 {
		t.Errorf("after stop: %+v", s)
	}
}
