package sqlite_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// A model's version starts at 1 and grows with every update, a rename
// included, as stored and as returned; a refused update leaves it.
func TestModelVersionGrowsWithEveryUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	if c.model.Version != 1 {
		t.Fatalf("new model at version %d", c.model.Version)
	}
	m := c.model
	for i, change := range []func(*store.Model){
		func(m *store.Model) { m.Description = "changed" },
		func(m *store.Model) { m.Name = "clients" },
		func(*store.Model) {}, // an update that changes nothing is still an update
	} {
		change(&m)
		got, err := b.db.UpdateModel(b.ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := b.db.GetModel(b.ctx, b.ws.ID, m.ID)
		if err != nil || got.Version != i+2 || stored.Version != i+2 {
			t.Fatalf("update %d: returned version %d, stored %d (%v), want %d", i, got.Version, stored.Version, err, i+2)
		}
		m = got
	}
	bad := m
	bad.PrimaryKey = "nope"
	if _, err := b.db.UpdateModel(b.ctx, bad); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad update: %v", err)
	}
	if stored, _ := b.db.GetModel(b.ctx, b.ws.ID, m.ID); stored.Version != m.Version {
		t.Errorf("a refused update moved the version to %d", stored.Version)
	}
}

// The dependents of a model or audience are what its delete would name,
// read without deleting anything.
func TestDependentsWithoutDeleting(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	deps, err := b.db.ModelDependents(b.ctx, b.ws.ID, c.model.ID)
	if err != nil || len(deps) != 2 || deps[0].ID != c.audience.ID || deps[1].ID != c.sync.ID {
		t.Errorf("model dependents = %+v, %v; want its audience and that audience's sync", deps, err)
	}
	deps, err = b.db.AudienceDependents(b.ctx, b.ws.ID, c.audience.ID)
	if err != nil || len(deps) != 1 || deps[0].ID != c.sync.ID {
		t.Errorf("audience dependents = %+v, %v; want its sync", deps, err)
	}
	if _, err := b.db.GetModel(b.ctx, b.ws.ID, c.model.ID); err != nil {
		t.Errorf("the model is gone after listing its dependents: %v", err)
	}
	for name, err := range map[string]error{
		"unknown model":              second(b.db.ModelDependents(b.ctx, b.ws.ID, "mdl_nope")),
		"model of another workspace": second(b.db.ModelDependents(b.ctx, b.other.ID, c.model.ID)),
		"unknown audience":           second(b.db.AudienceDependents(b.ctx, b.ws.ID, "aud_nope")),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want not found", name, err)
		}
	}
}

// An approval keeps the pins it was created with; a pin without an
// object or version is refused.
func TestApprovalKeepsItsPins(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pins := []store.ApprovalPin{{Type: "model", ID: "mdl_1", Name: "customers", Version: 3}}
	a, err := b.db.CreateApproval(b.ctx, approvalFor(b, pins))
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.db.GetApproval(b.ctx, b.ws.ID, a.ID)
	if err != nil || len(got.Pins) != 1 || got.Pins[0] != pins[0] {
		t.Errorf("pins read back = %+v, %v", got.Pins, err)
	}
	none, err := b.db.CreateApproval(b.ctx, approvalFor(b, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b.db.GetApproval(b.ctx, b.ws.ID, none.ID); got.Pins == nil || len(got.Pins) != 0 {
		t.Errorf("an approval without pins reads back %#v, want an empty list", got.Pins)
	}
	if _, err := b.db.CreateApproval(b.ctx, approvalFor(b, []store.ApprovalPin{{Type: "model", ID: "mdl_1"}})); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a pin without a version: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// approvalFor is a pending delete_model approval with these pins.
func approvalFor(b *bundle, pins []store.ApprovalPin) store.Approval {
	args := []byte(`{"model":"mdl_1"}`)
	sum := sha256.Sum256(args)
	return store.Approval{
		WorkspaceID: b.ws.ID, Tool: "delete_model", Args: args, ArgsHash: hex.EncodeToString(sum[:]),
		RequesterID: "mem_1", RequesterName: "agent", RequesterKind: store.KindAgent, KeyPrefix: "ss_x",
		Source: store.SourceAI, PolicyVersion: "v", Rules: []string{"ai-delete"}, Reason: "r",
		ExpiresAt: time.Now().Add(time.Hour), Pins: pins,
	}
}

// A write made with pins (store.WithPins) commits only while every pinned
// object still has its pinned name and version, checked in the write's own
// transaction: nothing of a refused write is stored, its pending audit
// event included.
func TestWritesWithStalePinsAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	pin := store.ApprovalPin{Type: "model", ID: c.model.ID, Name: c.model.Name, Version: c.model.Version}
	audPin := store.ApprovalPin{Type: "audience", ID: c.audience.ID, Name: c.audience.Name, Version: c.audience.Version}

	// Another change lands after the pins were taken.
	moved := c.model
	moved.Description = "changed by someone else"
	if _, err := b.db.UpdateModel(b.ctx, moved); err != nil {
		t.Fatal(err)
	}
	for name, pins := range map[string][]store.ApprovalPin{
		"stale version": {audPin, pin},
		"other name":    {{Type: "model", ID: c.model.ID, Name: "someone else", Version: 2}},
		"gone":          {{Type: "audience", ID: "aud_gone", Name: "x", Version: 1}},
		"unknown kind":  {{Type: "sync", ID: c.sync.ID, Name: "x", Version: 1}},
	} {
		ev := store.AuditEvent{At: time.Now(), WorkspaceID: b.ws.ID, ActorType: "agent", ActorID: "mem_x", Source: store.SourceAI,
			Action: "models.update", Tool: "update_model"}
		ctx, pending := store.WithPendingAudit(store.WithPins(b.ctx, pins), &ev, nil)
		next := moved
		next.Description = "what the human approved"
		if _, err := b.db.UpdateModel(ctx, next); !errors.Is(err, store.ErrPinChanged) {
			t.Errorf("%s: update = %v, want ErrPinChanged", name, err)
		}
		if err := b.db.DeleteModel(ctx, b.ws.ID, c.model.ID); !errors.Is(err, store.ErrPinChanged) {
			t.Errorf("%s: delete = %v, want ErrPinChanged", name, err)
		}
		if pending.Written() {
			t.Errorf("%s: the refused write's audit event was recorded", name)
		}
	}
	got, err := b.db.GetModel(b.ctx, b.ws.ID, c.model.ID)
	if err != nil || got.Description != "changed by someone else" || got.Version != 2 {
		t.Fatalf("after refused writes: %+v, %v", got, err)
	}
	// Pins that hold let the write through.
	fresh := store.ApprovalPin{Type: "model", ID: got.ID, Name: got.Name, Version: got.Version}
	next := got
	next.Description = "approved"
	if _, err := b.db.UpdateModel(store.WithPins(b.ctx, []store.ApprovalPin{audPin, fresh}), next); err != nil {
		t.Fatalf("update with pins that hold: %v", err)
	}
}
