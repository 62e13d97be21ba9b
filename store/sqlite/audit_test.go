package sqlite_test

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/signalsmith/agent-server/store"
)

func auditEvent(workspaceID string, at time.Time, action string) store.AuditEvent {
	return store.AuditEvent{
		At: at, WorkspaceID: workspaceID, ActorType: store.KindAgent, ActorID: "mem_1", ActorName: "bot",
		KeyPrefix: "ss_abc", Source: store.SourceAI, Action: action, Tool: "list_models", Decision: store.DecisionAllowed,
	}
}

func TestAuditAppendAndRead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// Out of order on purpose, with sub-second differences.
	for _, offset := range []time.Duration{3 * time.Second, 0, 2500 * time.Millisecond, 1 * time.Second, 2 * time.Second} {
		if err := b.db.AppendAudit(b.ctx, auditEvent(b.ws.ID, base.Add(offset), fmt.Sprint("models.read@", offset))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.db.AppendAudit(b.ctx, auditEvent(b.other.ID, base.Add(time.Hour), "models.read")); err != nil {
		t.Fatal(err)
	}

	got, err := b.db.Audit(b.ctx, store.AuditFilter{WorkspaceID: b.ws.ID})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range got {
		actions = append(actions, e.Action)
	}
	want := []string{"models.read@3s", "models.read@2.5s", "models.read@2s", "models.read@1s", "models.read@0s"}
	if !reflect.DeepEqual(actions, want) {
		t.Errorf("audit order = %v, want %v", actions, want)
	}

	limited, err := b.db.Audit(b.ctx, store.AuditFilter{WorkspaceID: b.ws.ID, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(limited) != 2 || limited[0].Action != want[0] || limited[1].Action != want[1] {
		t.Errorf("limit 2 = %+v, want the two newest", limited)
	}
	all, err := b.db.Audit(b.ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Fatalf("audit of all workspaces has %d events, want 6", len(all))
	}
	if all[0].WorkspaceID != b.other.ID {
		t.Errorf("newest event of all workspaces is from %s, want the other workspace's", all[0].WorkspaceID)
	}
}

func TestAuditRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := store.AuditEvent{
		WorkspaceID: b.ws.ID, ActorType: store.KindAgent, ActorID: "mem_1", ActorName: "bot", KeyPrefix: "ss_abc",
		Source: store.SourceAI, Action: "syncs.create", Tool: "create_sync", ResourceType: "sync", ResourceID: "syn_1",
		Decision: store.DecisionApprovalRequired, Rules: []string{"ai-prod-sync", "size"}, Reason: "production destination",
		ApprovalID: "apr_1", Args: map[string]any{"audience_id": "aud_1", "limit": float64(10), "nested": map[string]any{"a": true}},
		Result: "queued", LatencyMS: 12.5, Client: "claude-code/1.0", SessionID: "s1", RequestID: "r1",
	}
	before := time.Now().UTC()
	if err := b.db.AppendAudit(b.ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := b.db.Audit(b.ctx, store.AuditFilter{WorkspaceID: b.ws.ID})
	if err != nil || len(got) != 1 {
		t.Fatalf("audit = %+v, %v", got, err)
	}
	g := got[0]
	id, err := uuid.Parse(g.ID)
	if err != nil || id.Version() != 7 {
		t.Errorf("assigned id %q is not a UUIDv7", g.ID)
	}
	if g.At.Before(before) || g.At.After(time.Now()) || g.At.Location() != time.UTC {
		t.Errorf("assigned at = %v, want now in UTC", g.At)
	}
	// The first event starts the chain; numbers read back exactly as
	// written (json.Number), so the event hashes as recorded.
	e.ID, e.At, e.Seq, e.PrevHash, e.Hash = g.ID, g.At, 1, "", g.Hash
	e.Args["limit"] = json.Number("10")
	if h, err := store.AuditHash(g); err != nil || h != g.Hash || len(h) != 64 {
		t.Errorf("hash %q, recomputed %q (%v)", g.Hash, h, err)
	}
	if !reflect.DeepEqual(g, e) {
		t.Errorf("read back %+v\nwant %+v", g, e)
	}
	// Ids are unique: recording the same event twice is a conflict.
	wantErr(t, b.db.AppendAudit(b.ctx, g), store.ErrConflict)
}

func TestAuditLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Insert past the maximum in one transaction, straight into the file.
	tx, err := b.raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1005 {
		if _, err := tx.Exec(`INSERT INTO audit_events (id, at, workspace_id, source, action, decision)
			VALUES (?, ?, ?, 'API', 'audit.read', 'allowed')`, fmt.Sprintf("e%04d", i), base.Add(time.Duration(i)*time.Second), b.ws.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		limit, want int
	}{{0, 50}, {-1, 50}, {7, 7}, {1000, 1000}, {5000, 1000}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			t.Parallel()
			got, err := b.db.Audit(b.ctx, store.AuditFilter{WorkspaceID: b.ws.ID, Limit: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("limit %d: %d events, want %d", tt.limit, len(got), tt.want)
			}
			if got[0].ID != "e1004" {
				t.Errorf("limit %d: newest event %s, want e1004", tt.limit, got[0].ID)
			}
		})
	}
}

func TestAuditRejectsInvalid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name string
		edit func(*store.AuditEvent)
	}{
		{"unknown source", func(e *store.AuditEvent) { e.Source = "MCP" }},
		{"no source", func(e *store.AuditEvent) { e.Source = "" }},
		{"unknown decision", func(e *store.AuditEvent) { e.Decision = "maybe" }},
		{"no action", func(e *store.AuditEvent) { e.Action = "" }},
		{"NaN latency", func(e *store.AuditEvent) { e.LatencyMS = math.NaN() }},
		{"negative latency", func(e *store.AuditEvent) { e.LatencyMS = -1 }},
		{"args not json", func(e *store.AuditEvent) { e.Args = map[string]any{"c": make(chan int)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := auditEvent(b.ws.ID, time.Now(), "models.read")
			tt.edit(&e)
			before := count(t, b, "audit_events")
			wantErr(t, b.db.AppendAudit(b.ctx, e), store.ErrInvalid)
			if after := count(t, b, "audit_events"); after != before {
				t.Errorf("audit rows %d -> %d", before, after)
			}
		})
	}
}

func TestAuditConcurrentAppends(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const writers, each = 32, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- b.db.AppendAudit(b.ctx, auditEvent(b.ws.ID, time.Time{}, fmt.Sprintf("w%d.e%d", w, i)))
			}
		})
	}
	// Reads run alongside the writers.
	for range 4 {
		wg.Go(func() {
			if _, err := b.db.Audit(b.ctx, store.AuditFilter{WorkspaceID: b.ws.ID}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent append: %v", err)
		}
	}
	if n := count(t, b, "audit_events"); n != writers*each {
		t.Errorf("%d audit events stored, want %d", n, writers*each)
	}
}
