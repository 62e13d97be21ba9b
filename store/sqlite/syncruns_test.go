package sqlite_test

import (
	"errors"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

func TestSyncOwnerMustBeAMemberOfTheWorkspace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	mine := createKey(t, b, store.NewKey{MemberName: "ada", Role: "owner"})
	theirs := createKey(t, b, store.NewKey{WorkspaceID: b.other.ID, MemberName: "eve", Role: "owner"})
	for _, tc := range []struct {
		name, owner string
		want        error
	}{
		{name: "a member of the workspace", owner: mine.MemberID},
		{name: "a member of another workspace", owner: theirs.MemberID, want: store.ErrInvalid},
		{name: "no such member", owner: "mem_nope", want: store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := b.db.CreateSync(b.ctx, store.Sync{WorkspaceID: b.ws.ID, AudienceID: c.audience.ID,
				DestinationID: c.destination.ID, Mode: "mirror", OwnerID: tc.owner,
				Mappings: []store.FieldMapping{{From: "email", To: "email"}}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("create sync owned by %s: %v, want %v", tc.owner, err, tc.want)
			}
			if tc.want != nil {
				return
			}
			got, err := b.db.GetSync(b.ctx, b.ws.ID, s.ID)
			if err != nil || got.OwnerID != tc.owner {
				t.Fatalf("stored sync %+v, %v; want owner %s", got, err, tc.owner)
			}
		})
	}
}

func TestSyncLeaseKeepsRunsApart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	now := time.Now()
	lease := func(holder string, at time.Time) error {
		return b.db.AcquireSyncLease(b.ctx, b.ws.ID, c.sync.ID, holder, at, time.Minute)
	}
	if err := lease("a", now); err != nil {
		t.Fatalf("first lease: %v", err)
	}
	if err := lease("b", now.Add(30*time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("lease while another runs: %v, want ErrConflict", err)
	}
	if err := lease("a", now.Add(30*time.Second)); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	// The renewal moved the end: b still waits past the first minute.
	if err := lease("b", now.Add(80*time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("lease before the renewed one ran out: %v, want ErrConflict", err)
	}
	// A crashed holder's lease runs out.
	if err := lease("b", now.Add(2*time.Minute)); err != nil {
		t.Fatalf("lease after the other ran out: %v", err)
	}
	if err := b.db.ReleaseSyncLease(b.ctx, b.ws.ID, c.sync.ID, "a"); err != nil {
		t.Fatal(err)
	}
	if err := lease("c", now.Add(2*time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a stale holder's release freed b's lease: %v", err)
	}
	if err := b.db.ReleaseSyncLease(b.ctx, b.ws.ID, c.sync.ID, "b"); err != nil {
		t.Fatal(err)
	}
	if err := lease("c", now.Add(2*time.Minute)); err != nil {
		t.Fatalf("lease after release: %v", err)
	}
	if err := b.db.AcquireSyncLease(b.ctx, b.other.ID, c.sync.ID, "x", now, time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lease of a sync of another workspace: %v, want ErrNotFound", err)
	}
}

func TestSyncRunsAreStoredPerWorkspace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	if _, err := b.db.CreateSyncRun(b.ctx, store.SyncRun{WorkspaceID: b.other.ID, SyncID: c.sync.ID, State: store.RunRunning}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("run of another workspace's sync: %v, want ErrInvalid", err)
	}
	r, err := b.db.CreateSyncRun(b.ctx, store.SyncRun{WorkspaceID: b.ws.ID, SyncID: c.sync.ID, State: store.RunRunning,
		Trigger: "manual", Source: store.SourceAI})
	if err != nil {
		t.Fatal(err)
	}
	done := time.Now().UTC().Truncate(time.Millisecond)
	r.State, r.Added, r.Changed, r.Removed, r.Failed, r.Skipped, r.LastBatch, r.FinishedAt = store.RunSucceeded, 5, 4, 3, 2, 1, 7, &done
	if err := b.db.UpdateSyncRun(b.ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := b.db.GetSyncRun(b.ctx, b.ws.ID, r.ID)
	if err != nil || got.State != store.RunSucceeded || got.Added != 5 || got.Changed != 4 || got.Removed != 3 ||
		got.Failed != 2 || got.Skipped != 1 || got.LastBatch != 7 || got.FinishedAt == nil || !got.FinishedAt.Equal(done) ||
		got.Trigger != "manual" || got.Source != store.SourceAI {
		t.Fatalf("stored run = %+v, %v", got, err)
	}
	if _, err := b.db.GetSyncRun(b.ctx, b.other.ID, r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("run read from another workspace: %v, want ErrNotFound", err)
	}
	r.WorkspaceID = b.other.ID
	if err := b.db.UpdateSyncRun(b.ctx, r); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("run updated from another workspace: %v, want ErrNotFound", err)
	}
	second, err := b.db.CreateSyncRun(b.ctx, store.SyncRun{WorkspaceID: b.ws.ID, SyncID: c.sync.ID, State: store.RunRunning,
		StartedAt: time.Now().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := b.db.ListSyncRuns(b.ctx, b.ws.ID, c.sync.ID, 1)
	if err != nil || len(runs) != 1 || runs[0].ID != second.ID {
		t.Fatalf("newest run = %v, %v; want %s", runs, err, second.ID)
	}
}

// TestUpdateAndDeleteSync: an update keeps the owner, stores transforms
// and refuses a destination of another workspace; a delete takes the runs
// with it; neither reaches another workspace's sync.
func TestUpdateAndDeleteSync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	theirs := createCatalog(t, b, b.other.ID)
	owner := createKey(t, b, store.NewKey{MemberName: "ada", Role: "owner"})
	s, err := b.db.CreateSync(b.ctx, store.Sync{WorkspaceID: b.ws.ID, AudienceID: c.audience.ID,
		DestinationID: c.destination.ID, Mode: "upsert", OwnerID: owner.MemberID,
		Mappings: []store.FieldMapping{{From: "email", To: "email"}}})
	if err != nil {
		t.Fatal(err)
	}
	up := s
	up.Mode, up.State, up.Schedule, up.OwnerID = "mirror", "paused", "1h", "mem_someone_else"
	up.Mappings = []store.FieldMapping{{From: "email", To: "email", Transform: store.TransformSHA256}, {From: "plan", To: "p", Transform: store.TransformDrop}}
	if _, err := b.db.UpdateSync(b.ctx, up); err != nil {
		t.Fatal(err)
	}
	got, err := b.db.GetSync(b.ctx, b.ws.ID, s.ID)
	if err != nil || got.Mode != "mirror" || got.State != "paused" || got.OwnerID != owner.MemberID ||
		len(got.Mappings) != 2 || got.Mappings[0].Transform != store.TransformSHA256 {
		t.Fatalf("updated sync %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*store.Sync)
		want error
	}{
		{"destination of another workspace", func(x *store.Sync) { x.DestinationID = theirs.destination.ID }, store.ErrInvalid},
		{"unknown transform", func(x *store.Sync) { x.Mappings = []store.FieldMapping{{From: "a", To: "b", Transform: "rot13"}} }, store.ErrInvalid},
		{"sync of another workspace", func(x *store.Sync) {
			x.WorkspaceID = b.other.ID
			x.AudienceID, x.DestinationID = theirs.audience.ID, theirs.destination.ID
		}, store.ErrNotFound},
	} {
		bad := got
		tc.edit(&bad)
		if _, err := b.db.UpdateSync(b.ctx, bad); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := b.db.CreateSyncRun(b.ctx, store.SyncRun{WorkspaceID: b.ws.ID, SyncID: s.ID, State: store.RunSucceeded, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := b.db.DeleteSync(b.ctx, b.other.ID, s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete from another workspace: %v", err)
	}
	if err := b.db.DeleteSync(b.ctx, b.ws.ID, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.GetSync(b.ctx, b.ws.ID, s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted sync still there: %v", err)
	}
	if runs, err := b.db.ListSyncRuns(b.ctx, b.ws.ID, s.ID, 0); err != nil || len(runs) != 0 {
		t.Fatalf("runs of a deleted sync: %v, %v", runs, err)
	}
}
