package activation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/activation"
	"github.com/signalsmith/agent-server/store"
)

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)
	cases := []struct {
		in, want string
		next     time.Time
	}{
		{"", "", time.Time{}},
		{"1h", "", from.Add(time.Hour)},
		{"0 3 * * *", "", time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)},
		{"30s", "at least 1m0s", time.Time{}},
		{"61 * * * *", "not a valid 5-field cron", time.Time{}},
		{"* * * *", "neither an interval", time.Time{}},
		{"@daily", "neither an interval", time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			s, err := activation.ParseSchedule(tc.in)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.in) {
					t.Fatalf("ParseSchedule(%q): %v, want an error with %q that does not repeat the input", tc.in, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Next(from); !got.Equal(tc.next) {
				t.Errorf("Next = %v, want %v", got, tc.next)
			}
		})
	}
}

// TestSchedulerRunsDueSyncsAndAudits: a due sync runs once per schedule
// period, computed from its last run in the store (a new scheduler, as
// after a restart, does not run it again early); its outcome is audited
// with source SYSTEM; a trigger returns the run at once and is audited
// with the caller.
func TestSchedulerRunsDueSyncsAndAudits(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{})
	s := e.sync
	s.Schedule = "1h"
	if _, err := e.db.UpdateSync(e.ctx, s); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver()
	now := s.CreatedAt.Add(2 * time.Hour)
	newSched := func() *activation.Scheduler {
		sc, err := activation.NewScheduler(activation.SchedulerConfig{Engine: e.engine(t, rc, nil), Store: e.db,
			WorkspaceIDs: []string{e.ws.ID}, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
		return sc
	}
	sc := newSched()
	if n := sc.RunDue(e.ctx); n != 1 {
		t.Fatalf("RunDue started %d runs, want 1", n)
	}
	waitEnded(t, e, s.ID)
	sc.Close() // waits for the run's goroutine: its lease is released
	runs, err := e.db.ListSyncRuns(e.ctx, e.ws.ID, s.ID, 0)
	if err != nil || len(runs) != 1 || runs[0].State != store.RunSucceeded || runs[0].Source != store.SourceSystem {
		t.Fatalf("runs %+v (%v), want one succeeded scheduled run", runs, err)
	}
	// After a restart the schedule goes on from the stored run.
	now = runs[0].StartedAt.Add(30 * time.Minute)
	if n := newSched().RunDue(e.ctx); n != 0 {
		t.Fatalf("a restarted scheduler ran the sync %d times before its next time", n)
	}
	sc = newSched()
	by := store.Principal{WorkspaceID: e.ws.ID, MemberID: e.owner.MemberID, MemberName: "owner", Kind: store.KindUser}
	rec, err := sc.Trigger(e.ctx, activation.Request{WorkspaceID: e.ws.ID, SyncID: s.ID, Trigger: activation.TriggerManual, Source: store.SourceAI}, by)
	if err != nil || rec.ID == "" || rec.State != store.RunRunning {
		t.Fatalf("Trigger: %+v, %v; want the running run at once", rec, err)
	}
	waitEnded(t, e, s.ID)
	sc.Close()
	evs, err := e.db.Audit(e.ctx, store.AuditFilter{WorkspaceID: e.ws.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var system, caller bool
	for _, ev := range evs {
		if ev.Action != "syncs.trigger" || ev.ResourceType != "sync" || ev.ResourceID != s.ID || ev.Decision != store.DecisionExecuted {
			continue
		}
		switch {
		case ev.Source == store.SourceSystem && ev.ActorID == "scheduler" && strings.Contains(ev.Result, runs[0].ID):
			system = true
		case ev.Source == store.SourceAI && ev.ActorID == e.owner.MemberID && strings.Contains(ev.Result, rec.ID):
			caller = true
		}
	}
	if !system || !caller {
		t.Fatalf("outcome events: scheduled %v, triggered %v; want both", system, caller)
	}
}

// waitEnded waits until the sync's newest run is no longer running.
func waitEnded(t *testing.T, e *env, syncID string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		runs, err := e.db.ListSyncRuns(e.ctx, e.ws.ID, syncID, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 1 && runs[0].State != store.RunRunning {
			return
		}
	}
	t.Fatal("the run did not end")
}

// TestDryRunSendsNothing: a dry run counts what the next run sends, with
// nothing sent, no run recorded and the snapshot untouched.
func TestDryRunSendsNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{mode: "mirror"})
	rc := newReceiver()
	eng := e.engine(t, rc, nil)
	want := int64(len(e.members(t, "state = 'CA'")))
	d, err := eng.DryRun(e.ctx, e.ws.ID, e.sync.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Added != want || d.Changed != 0 || d.Removed != 0 || len(rc.take()) != 0 {
		t.Fatalf("dry run %+v, want %d adds and nothing sent", d, want)
	}
	if runs, _ := e.db.ListSyncRuns(e.ctx, e.ws.ID, e.sync.ID, 0); len(runs) != 0 {
		t.Fatalf("a dry run recorded %d runs", len(runs))
	}
	run, err := e.run(t, eng)
	if err != nil || run.Added != want {
		t.Fatalf("run after the dry run: %+v, %v", run, err)
	}
	e.exec(t, `UPDATE customers SET state = 'NV' WHERE customer_id IN (SELECT customer_id FROM customers WHERE state = 'CA' ORDER BY customer_id LIMIT 3)`)
	if d, err = eng.DryRun(e.ctx, e.ws.ID, e.sync.ID); err != nil || d.Removed != 3 || d.Added != 0 || d.Held != want {
		t.Fatalf("dry run after 3 left: %+v, %v; want 3 removes of %d held", d, err, want)
	}
	if n := e.plannerCount(t, `SELECT count(*) FROM sync_stage`); n != 0 {
		t.Fatalf("a dry run left %d staged rows", n)
	}
}
