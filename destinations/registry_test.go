package destinations_test

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

func TestRegistry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ws, err := db.EnsureWorkspace(ctx, "default", guardrails.BuiltInRoles())
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.EnsureWorkspace(ctx, "other", guardrails.BuiltInRoles())
	if err != nil {
		t.Fatal(err)
	}
	kr, err := destinations.LoadKeyring(noEnv, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{}
	rc.t, rc.taken, rc.secret = t, map[string]int{}, planted
	hs := httptest.NewServer(rc)
	t.Cleanup(hs.Close)

	id, err := destinations.NewID()
	if err != nil {
		t.Fatal(err)
	}
	d, err := destinations.Build(ws.ID, id, destinations.Spec{Name: "hook", Type: "webhook", Category: "crm",
		Environment: "production", URL: hs.URL}, dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kr.Seal(ws.ID, id, []byte(planted))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSealedDestination(ctx, d, c); err != nil {
		t.Fatal(err)
	}
	noSecret, err := db.CreateDestination(ctx, store.Destination{WorkspaceID: ws.ID, Name: "bare", Type: "webhook",
		Category: "crm", Environment: "sandbox", Config: map[string]any{"url": hs.URL}})
	if err != nil {
		t.Fatal(err)
	}

	reg := destinations.NewRegistry(db, destinations.Keys(noEnv, dir), dir)
	s, got, err := reg.Sender(ctx, ws.ID, id)
	if err != nil || got.ID != id || destinations.BatchSize(got) != destinations.DefaultBatchSize {
		t.Fatalf("sender = %+v, %v", got, err)
	}
	defer s.Close()
	if _, err := s.Send(ctx, batch(1)); err != nil || rc.badSig != 0 || rc.records != 2 {
		t.Fatalf("send = %v (%d bad signatures, %d records)", err, rc.badSig, rc.records)
	}

	for _, tc := range []struct {
		name, ws, id string
		reg          *destinations.Registry
		want         error
	}{
		{"a destination of another workspace", other.ID, id, reg, store.ErrNotFound},
		{"a webhook without a secret", ws.ID, noSecret.ID, reg, store.ErrInvalid},
		{"no master key", ws.ID, id, destinations.NewRegistry(db, nil, dir), destinations.ErrNoMasterKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, _, err := tc.reg.Sender(ctx, tc.ws, tc.id); !errors.Is(err, tc.want) || s != nil {
				t.Fatalf("sender = %v, %v; want %v", s, err, tc.want)
			}
		})
	}
}
