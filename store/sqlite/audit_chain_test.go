package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// appendN appends n events of the bundle's workspace with distinct actions.
func appendN(t *testing.T, b *bundle, n int, source string) []store.AuditEvent {
	t.Helper()
	for i := range n {
		e := auditEvent(b.ws.ID, time.Time{}, fmt.Sprintf("models.read#%d", i))
		e.Source = source
		e.Args = map[string]any{"i": i, "big": int64(1) << 60, "html": "<a & b>", "bad": "\xff"}
		e.Rules = []string{"rule-\xff\xfe", "ok"}
		e.Reason = "bad \xff\xfe text"
		if err := b.db.AppendAudit(b.ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := b.db.Audit(b.ctx, store.AuditFilter{Oldest: true, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// verify returns the store's chain report, failing on a read error.
func verify(t *testing.T, b *bundle) store.ChainReport {
	t.Helper()
	rep, err := b.db.VerifyAudit(b.ctx)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

func TestAuditChainUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const writers, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each+writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- b.db.AppendAudit(b.ctx, auditEvent(b.ws.ID, time.Time{}, fmt.Sprintf("w%d.e%d", w, i)))
			}
		})
	}
	// State changes that carry their own event interleave with the appends.
	for w := range writers {
		wg.Go(func() {
			ev := &store.AuditEvent{WorkspaceID: b.ws.ID, ActorType: "cli", ActorID: "cli", Source: store.SourceCLI, Action: "members.manage"}
			ctx, _ := store.WithPendingAudit(b.ctx, ev, nil)
			prefix := newPrefix(t)
			_, err := b.db.CreateKey(ctx, store.NewKey{WorkspaceID: b.ws.ID, MemberName: fmt.Sprintf("m%d", w), Kind: store.KindUser,
				Role: "member", Email: fmt.Sprintf("m%d@example.test", w), Prefix: prefix, Hash: fakeHash(prefix)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent write: %v", err)
		}
	}
	total := writers*each + writers
	rep := verify(t, b)
	if rep.Break != nil || rep.Events != int64(total) || rep.HeadSeq != int64(total) {
		t.Fatalf("verify = %+v, want %d intact events", rep, total)
	}
	if n := count(t, b, "audit_outbox"); n != total {
		t.Errorf("outbox holds %d events, want %d", n, total)
	}
	s, err := b.db.AuditShipping(b.ctx)
	if err != nil || s.Backlog != int64(total) || s.LastSeq != 0 {
		t.Errorf("shipping = %+v, %v", s, err)
	}
}

func TestAuditHashCoversEveryField(t *testing.T) {
	t.Parallel()
	base := store.AuditEvent{
		ID: "01", At: time.Date(2026, 5, 1, 10, 0, 0, 123000, time.UTC), WorkspaceID: "ws", ActorType: "agent", ActorID: "m",
		ActorName: "n", KeyPrefix: "ss_x", Source: "AI", Action: "models.read", Tool: "get_model", ResourceType: "model",
		ResourceID: "mdl", Decision: "allowed", Rules: []string{"r"}, Reason: "why", ApprovalID: "apr", Args: map[string]any{"a": 1},
		Result: "ok", LatencyMS: 1.5, Client: "c/1", SessionID: "s", RequestID: "req", Seq: 7, PrevHash: "ab",
	}
	h0, err := store.AuditHash(base)
	if err != nil {
		t.Fatal(err)
	}
	edits := map[string]func(*store.AuditEvent){
		"id": func(e *store.AuditEvent) { e.ID = "02" }, "at": func(e *store.AuditEvent) { e.At = e.At.Add(time.Nanosecond) },
		"workspace": func(e *store.AuditEvent) { e.WorkspaceID = "x" }, "actor_type": func(e *store.AuditEvent) { e.ActorType = "x" },
		"actor_id": func(e *store.AuditEvent) { e.ActorID = "x" }, "actor_name": func(e *store.AuditEvent) { e.ActorName = "x" },
		"key_prefix": func(e *store.AuditEvent) { e.KeyPrefix = "x" }, "source": func(e *store.AuditEvent) { e.Source = "UI" },
		"action": func(e *store.AuditEvent) { e.Action = "x" }, "tool": func(e *store.AuditEvent) { e.Tool = "x" },
		"resource_type": func(e *store.AuditEvent) { e.ResourceType = "x" }, "resource_id": func(e *store.AuditEvent) { e.ResourceID = "x" },
		"decision": func(e *store.AuditEvent) { e.Decision = "denied" }, "rules": func(e *store.AuditEvent) { e.Rules = nil },
		"reason": func(e *store.AuditEvent) { e.Reason = "x" }, "approval_id": func(e *store.AuditEvent) { e.ApprovalID = "x" },
		"args": func(e *store.AuditEvent) { e.Args = map[string]any{"a": 2} }, "result": func(e *store.AuditEvent) { e.Result = "x" },
		"latency_ms": func(e *store.AuditEvent) { e.LatencyMS = 1.25 }, "client": func(e *store.AuditEvent) { e.Client = "x" },
		"session_id": func(e *store.AuditEvent) { e.SessionID = "x" }, "request_id": func(e *store.AuditEvent) { e.RequestID = "x" },
		"seq": func(e *store.AuditEvent) { e.Seq = 8 }, "prev_hash": func(e *store.AuditEvent) { e.PrevHash = "cd" },
		// Field boundaries are part of the encoding: moving text from one
		// field to the next changes the hash.
		"boundary": func(e *store.AuditEvent) { e.Tool, e.ResourceType = "get_modelm", "odel" },
	}
	for name, edit := range edits {
		e := base
		e.Args = map[string]any{"a": 1}
		edit(&e)
		if h, err := store.AuditHash(e); err != nil || h == h0 {
			t.Errorf("changing %s left the hash as it was (%v)", name, err)
		}
	}
	if e := base; true {
		e.Hash = "anything"
		if h, _ := store.AuditHash(e); h != h0 {
			t.Error("the hash covers its own field")
		}
	}
}

func TestAuditEventsReadBackHashExactly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	evs := appendN(t, b, 3, store.SourceAI)
	for _, e := range evs {
		if h, err := store.AuditHash(e); err != nil || h != e.Hash {
			t.Errorf("event %d hashes to %s, recorded %s (%v)", e.Seq, h, e.Hash, err)
		}
		if e.Args["big"] != json.Number("1152921504606846976") || e.Args["html"] != "<a & b>" || e.Args["bad"] != "\uFFFD" {
			t.Errorf("args read back as %#v", e.Args)
		}
	}
	var text string
	if err := b.raw.QueryRow(`SELECT args FROM audit_events WHERE seq = 1`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	if text != `{"bad":"�","big":1152921504606846976,"html":"<a & b>","i":0}` {
		t.Errorf("stored args %s are not canonical JSON", text)
	}
}

func TestPendingAuditCommitsWithTheChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	model := func(name string) store.Model {
		return store.Model{WorkspaceID: b.ws.ID, Name: name, Table: "analytics.customers", PrimaryKey: "customer_id",
			Columns: []store.Column{{Name: "customer_id", Type: "integer", PII: store.PIINone}}}
	}
	ev := &store.AuditEvent{At: time.Now(), WorkspaceID: b.ws.ID, ActorType: store.KindAgent, ActorID: "mem_1", Source: store.SourceAI,
		Action: "models.create", Tool: "create_model", ResourceType: "model", Args: map[string]any{"name": "one"}}
	prepared := false
	ctx, p := store.WithPendingAudit(b.ctx, ev, func(e *store.AuditEvent) { prepared, e.Result = true, "created" })
	m, err := b.db.CreateModel(ctx, model("one"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Written() || !prepared || ev.Decision != store.DecisionExecuted || ev.ResourceID != m.ID || ev.Seq == 0 || ev.Result != "created" {
		t.Fatalf("pending event after the change: written %v, prepared %v, %+v", p.Written(), prepared, ev)
	}
	evs, err := b.db.Audit(b.ctx, store.AuditFilter{WorkspaceID: b.ws.ID})
	if err != nil || len(evs) != 1 || evs[0].ID != ev.ID || evs[0].Hash != ev.Hash {
		t.Fatalf("audit = %+v, %v", evs, err)
	}
	// A second change under the same context does not record it twice.
	if _, err := b.db.CreateModel(ctx, model("two")); err != nil {
		t.Fatal(err)
	}
	if n := count(t, b, "audit_events"); n != 1 {
		t.Errorf("%d events after a second change, want 1", n)
	}

	// A change that fails records nothing and leaves the event pending.
	ev2 := &store.AuditEvent{WorkspaceID: b.ws.ID, Source: store.SourceAI, Action: "models.create"}
	ctx2, p2 := store.WithPendingAudit(b.ctx, ev2, nil)
	wantErr(t, func() error { _, err := b.db.CreateModel(ctx2, model("one")); return err }(), store.ErrConflict)
	if p2.Written() || count(t, b, "audit_events") != 1 {
		t.Error("a failed change recorded its event")
	}

	// An event that cannot be recorded rolls the change back.
	bad := &store.AuditEvent{WorkspaceID: b.ws.ID, Source: "nowhere", Action: "models.create"}
	ctx3, p3 := store.WithPendingAudit(b.ctx, bad, nil)
	wantErr(t, func() error { _, err := b.db.CreateModel(ctx3, model("three")); return err }(), store.ErrInvalid)
	if _, err := b.db.GetModel(b.ctx, b.ws.ID, "three"); err == nil || p3.Written() {
		t.Error("a change whose audit event failed was committed")
	}
}

// tamper runs statements on the store's file behind its back, with the
// append-only triggers dropped as an attacker would.
func tamper(t *testing.T, b *bundle, stmts ...string) {
	t.Helper()
	all := append([]string{`DROP TRIGGER audit_events_no_update`, `DROP TRIGGER audit_events_no_delete`}, stmts...)
	for _, q := range all {
		if _, err := b.raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestAuditVerifyNamesTheFirstBrokenLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		stmts   []string
		kind    string
		seq     int64 // of the event named
		details string
	}{
		{"changed field", []string{`UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 3`}, store.ChainChanged, 3, "was changed"},
		{"changed args", []string{`UPDATE audit_events SET args = '{"i":99}' WHERE seq = 4`}, store.ChainChanged, 4, "was changed"},
		{"deleted event", []string{`DELETE FROM audit_events WHERE seq = 3`}, store.ChainDeleted, 4, "seq 3 to 3"},
		{"deleted two", []string{`DELETE FROM audit_events WHERE seq IN (2, 3)`}, store.ChainDeleted, 4, "seq 2 to 3"},
		{"deleted first", []string{`DELETE FROM audit_events WHERE seq = 1`}, store.ChainDeleted, 2, "missing"},
		{"swapped two", []string{`UPDATE audit_events SET seq = -1 WHERE seq = 2`, `UPDATE audit_events SET seq = 2 WHERE seq = 3`,
			`UPDATE audit_events SET seq = 3 WHERE seq = -1`}, store.ChainReordered, 2, "chained after"},
		{"renumbered", []string{`UPDATE audit_events SET seq = 10 WHERE seq = 5`}, store.ChainChanged, 10, "seq was changed"},
		{"inserted outside", []string{`INSERT INTO audit_events (id, at, source, action, decision) VALUES ('rogue', '2026-01-01 00:00:00+00:00', 'AI', 'x', 'allowed')`},
			store.ChainUnchained, 0, "outside the chain"},
		{"forged hash", []string{`UPDATE audit_events SET hash = '` + strings.Repeat("0", 64) + `' WHERE seq = 5`}, store.ChainChanged, 5, "was changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			evs := appendN(t, b, 5, store.SourceAI)
			if rep := verify(t, b); rep.Break != nil || rep.Events != 5 {
				t.Fatalf("before tampering: %+v", rep)
			}
			tamper(t, b, tt.stmts...)
			rep := verify(t, b)
			if rep.Break == nil {
				t.Fatalf("verify passed after %s", tt.name)
			}
			br := rep.Break
			wantID := "rogue"
			for _, e := range evs {
				if e.Seq == tt.seq || (tt.name == "renumbered" && e.Seq == 5) || (tt.name == "swapped two" && e.Seq == 3) {
					wantID = e.ID
				}
			}
			if br.Kind != tt.kind || br.EventID != wantID || !strings.Contains(br.Detail, tt.details) {
				t.Errorf("break = %+v, want kind %s at event %s (%q)", br, tt.kind, wantID, tt.details)
			}
		})
	}
}

func TestAuditVerifyNoticesDeletedTail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	evs := appendN(t, b, 4, store.SourceAI)
	if err := b.db.MarkAuditShipped(b.ctx, evs, time.Now()); err != nil {
		t.Fatal(err)
	}
	tamper(t, b, `DELETE FROM audit_events WHERE seq = 4`)
	rep := verify(t, b)
	if rep.Break == nil || rep.Break.Kind != store.ChainDeleted || rep.Break.EventID != evs[3].ID {
		t.Errorf("verify after deleting the last, shipped event = %+v", rep.Break)
	}
}

func TestAppendOnlyTriggers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	appendN(t, b, 1, store.SourceAI)
	for _, q := range []string{`UPDATE audit_events SET reason = 'x'`, `DELETE FROM audit_events`} {
		if _, err := b.raw.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v", q, err)
		}
	}
}

func TestAuditFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	add := func(at time.Duration, source, actor, tool, decision string) {
		e := store.AuditEvent{At: base.Add(at), WorkspaceID: b.ws.ID, ActorType: store.KindAgent, ActorID: "mem_" + actor,
			ActorName: actor, KeyPrefix: "ss_" + actor, Source: source, Action: "models.read", Tool: tool, Decision: decision}
		if err := b.db.AppendAudit(b.ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	add(0, store.SourceAI, "bot", "get_model", store.DecisionAllowed)
	add(time.Hour, store.SourceAI, "bot", "delete_model", store.DecisionDenied)
	add(2*time.Hour, store.SourceCLI, "ops", "", store.DecisionExecuted)
	add(3*time.Hour, store.SourceAI, "other", "get_model", store.DecisionFailed)
	tests := []struct {
		f    store.AuditFilter
		want int
	}{
		{store.AuditFilter{}, 4},
		{store.AuditFilter{Actor: "bot"}, 2},
		{store.AuditFilter{Actor: "mem_bot"}, 2},
		{store.AuditFilter{Actor: "ss_other"}, 1},
		{store.AuditFilter{Source: store.SourceCLI}, 1},
		{store.AuditFilter{Tool: "get_model"}, 2},
		{store.AuditFilter{Decision: store.DecisionDenied}, 1},
		{store.AuditFilter{Since: base.Add(time.Hour)}, 3},
		{store.AuditFilter{Until: base.Add(time.Hour)}, 1},
		{store.AuditFilter{Since: base.Add(time.Hour), Until: base.Add(3 * time.Hour), Source: store.SourceAI}, 1},
		{store.AuditFilter{Oldest: true, AfterSeq: 2}, 2},
	}
	for _, tt := range tests {
		tt.f.WorkspaceID = b.ws.ID
		got, err := b.db.Audit(b.ctx, tt.f)
		if err != nil || len(got) != tt.want {
			t.Errorf("filter %+v: %d events (%v), want %d", tt.f, len(got), err, tt.want)
		}
	}
	oldest, _ := b.db.Audit(b.ctx, store.AuditFilter{WorkspaceID: b.ws.ID, Oldest: true})
	for i, e := range oldest {
		if e.Seq != int64(i+1) {
			t.Errorf("oldest first: event %d has seq %d", i, e.Seq)
		}
	}
}

func TestMigrationChainsEventsRecordedBefore(t *testing.T) {
	t.Parallel()
	b := setup(t)
	appendN(t, b, 3, store.SourceAI)
	// Take the file back to the schema before 0002, with its events.
	tamper(t, b,
		`DROP INDEX audit_events_seq`,
		`ALTER TABLE audit_events DROP COLUMN seq`,
		`UPDATE audit_events SET prev_hash = NULL, hash = NULL`,
		`DROP TABLE audit_outbox`, `DROP TABLE audit_shipping`,
		`DELETE FROM schema_migrations WHERE version = 2`)
	if err := b.db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), b.dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	rep, err := db.VerifyAudit(context.Background())
	if err != nil || rep.Break != nil || rep.Events != 3 {
		t.Fatalf("after migrating: %+v, %v", rep, err)
	}
	s, err := db.AuditShipping(context.Background())
	if err != nil || s.Backlog != 3 {
		t.Errorf("the migrated events are not queued for shipping: %+v, %v", s, err)
	}
}

func TestAuditSinkIsIdempotentAndVerifies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	appendN(t, b, 3, store.SourceAI)
	appendN(t, b, 2, store.SourceCLI)
	dir := filepath.Join(b.dir, "warehouse")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sink, err := sqlite.OpenAuditSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	read := func(table string) store.ReadAuditFunc {
		return func(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
			return sink.ReadAuditEvents(ctx, table, f)
		}
	}
	if evs, err := sink.ReadAuditEvents(b.ctx, store.AuditTableEvents, store.AuditFilter{Oldest: true}); err != nil || len(evs) != 0 {
		t.Fatalf("before any batch: %d events, %v", len(evs), err)
	}
	pending, err := b.db.UnshippedAudit(b.ctx, 100)
	if err != nil || len(pending) != 5 {
		t.Fatalf("unshipped = %d, %v", len(pending), err)
	}
	// A batch shipped twice (a crash between writing and marking) and an
	// overlapping one leave one copy of each event.
	for _, batch := range [][]store.AuditEvent{pending[:3], pending[:3], pending} {
		if err := sink.WriteAuditEvents(b.ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.db.MarkAuditShipped(b.ctx, pending, time.Now()); err != nil {
		t.Fatal(err)
	}
	all, err := sink.ReadAuditEvents(b.ctx, store.AuditTableEvents, store.AuditFilter{Oldest: true, Limit: 100})
	if err != nil || len(all) != 5 {
		t.Fatalf("audit_events holds %d events (%v), want 5", len(all), err)
	}
	ai, err := sink.ReadAuditEvents(b.ctx, store.AuditTableAI, store.AuditFilter{Oldest: true, Limit: 100})
	if err != nil || len(ai) != 3 {
		t.Fatalf("ai_operations holds %d events (%v), want the 3 AI ones", len(ai), err)
	}
	rep, err := store.VerifyCopy(b.ctx, b.db.Audit, read(store.AuditTableEvents), false)
	if err != nil || rep.Break != nil || rep.Events != 5 || rep.Behind != 0 {
		t.Fatalf("verify copy = %+v, %v", rep, err)
	}
	s, err := b.db.AuditShipping(b.ctx)
	if err != nil || s.Backlog != 0 || s.LastSeq != 5 || s.LastID != pending[4].ID || s.Shipped != 5 {
		t.Errorf("shipping state = %+v, %v", s, err)
	}

	// A new event makes the copy one behind; a changed copy is named.
	appendN(t, b, 1, store.SourceAI)
	rep, _ = store.VerifyCopy(b.ctx, b.db.Audit, read(store.AuditTableEvents), false)
	if rep.Break != nil || rep.Behind != 1 {
		t.Errorf("copy one behind: %+v", rep)
	}
	wh := raw(t, sink.Path())
	if _, err := wh.Exec(`UPDATE ai_operations SET decision = 'allowed', reason = 'ok' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	aiOnly := func(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
		f.Source = store.SourceAI
		return b.db.Audit(ctx, f)
	}
	rep, _ = store.VerifyCopy(b.ctx, aiOnly, read(store.AuditTableAI), true)
	if rep.Break == nil || rep.Break.Seq != 2 || rep.Break.Kind != store.ChainChanged {
		t.Errorf("changed ai_operations row: %+v", rep.Break)
	}
	if _, err := wh.Exec(`DELETE FROM audit_events WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	rep, _ = store.VerifyCopy(b.ctx, b.db.Audit, read(store.AuditTableEvents), false)
	if rep.Break == nil || rep.Break.Seq != 4 || rep.Break.Kind != store.ChainDeleted {
		t.Errorf("deleted warehouse row: %+v", rep.Break)
	}
}
