package activation_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/signalsmith/agent-server/activation"
	"github.com/signalsmith/agent-server/store"
)

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// wantFields checks that rec carries exactly what the destination should
// get for m: the email hashed (a redacted column), plan and city as they
// are.
func wantFields(t *testing.T, key string, rec store.SyncRecord, m member) {
	t.Helper()
	want := map[string]any{"email": nil, "plan": nil, "city": nil}
	if m.email.Valid {
		want["email"] = hashed(m.email.String)
	}
	if m.plan.Valid {
		want["plan"] = m.plan.String
	}
	if m.city.Valid {
		want["city"] = m.city.String
	}
	for k, v := range want {
		if got := rec.Fields[k]; got != v {
			t.Errorf("member %s: field %s = %v, want %v", key, k, got, v)
		}
	}
	if len(rec.Fields) != len(want) {
		t.Errorf("member %s: fields %v, want exactly %v", key, rec.Fields, want)
	}
}

func TestFirstRunSendsEveryMemberOnceWithEmailsHashed(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{})
	rcv := newReceiver()
	run, err := e.run(t, e.engine(t, rcv, nil))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	want := e.members(t, "state = 'CA'")
	if len(want) < 100 {
		t.Fatalf("the demo has %d Californians; the test needs many batches", len(want))
	}
	batches := rcv.take()
	got, dups := records(batches)
	if dups != 0 || len(got) != len(want) {
		t.Fatalf("sent %d members (%d repeats), want each of %d once", len(got), dups, len(want))
	}
	for key, m := range want {
		rec, ok := got[key]
		if !ok {
			t.Fatalf("member %s was not sent", key)
		}
		if rec.Op != store.OpUpsert {
			t.Errorf("member %s: op %s, want upsert", key, rec.Op)
		}
		wantFields(t, key, rec, m)
		if s, _ := rec.Fields["email"].(string); strings.Contains(s, "@") {
			t.Fatalf("member %s: an email left in clear", key)
		}
	}
	for i, b := range batches {
		if b.Number != i+1 || b.RunID != run.ID || b.SyncID != e.sync.ID || len(b.Records) > 40 {
			t.Fatalf("batch %d: number %d, run %s, sync %s, %d records; want numbered from 1, of run %s, at most 40",
				i, b.Number, b.RunID, b.SyncID, len(b.Records), run.ID)
		}
	}
	if run.State != store.RunSucceeded || run.Added != int64(len(want)) || run.Changed != 0 || run.Removed != 0 ||
		run.Failed != 0 || run.LastBatch != len(batches) || run.FinishedAt == nil || run.Trigger != activation.TriggerManual {
		t.Fatalf("run = %+v, want succeeded with %d added over %d batches", run, len(want), len(batches))
	}
	stored, err := e.db.GetSyncRun(e.ctx, e.ws.ID, run.ID)
	if err != nil || stored.State != store.RunSucceeded || stored.Added != run.Added {
		t.Fatalf("stored run = %+v, %v", stored, err)
	}
	if n := e.plannerCount(t, `SELECT count(*) FROM sync_runs WHERE id = ? AND state = 'succeeded' AND added = ?
		AND duration_ms IS NOT NULL`, run.ID, len(want)); n != 1 {
		t.Fatalf("cdp_planner.sync_runs has no succeeded row for the run")
	}
	if n := e.plannerCount(t, `SELECT count(*) FROM sync_snapshot WHERE sync_id = ?`, e.sync.ID); n != int64(len(want)) {
		t.Fatalf("snapshot holds %d members, want %d", n, len(want))
	}
	if n := e.plannerCount(t, `SELECT (SELECT count(*) FROM sync_stage) + (SELECT count(*) FROM sync_plan)`); n != 0 {
		t.Fatalf("%d staged or planned rows left after the run", n)
	}
	if rcv.closed != 1 {
		t.Fatalf("sender closed %d times, want 1", rcv.closed)
	}
}

func TestNextRunSendsOnlyTheDifference(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"upsert", "mirror"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := setup(t, envOptions{mode: mode})
			rcv := newReceiver()
			eng := e.engine(t, rcv, nil)
			if _, err := e.run(t, eng); err != nil {
				t.Fatal(err)
			}
			rcv.take()
			before := e.members(t, "state = 'CA'")
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range before {
					if !yield(k) {
						return
					}
				}
			})
			changed, left := keys[0], keys[1]
			// One member changes a mapped field, one leaves the
			// audience, and a customer elsewhere moves in; a change to
			// an unmapped column sends nothing.
			e.exec(t, `UPDATE customers SET city = 'Fresno-upd' WHERE customer_id = ?`, changed)
			e.exec(t, `UPDATE customers SET state = 'NV' WHERE customer_id = ?`, left)
			e.exec(t, `UPDATE customers SET lifetime_value = lifetime_value + 1 WHERE customer_id = ?`, keys[2])
			var joined int64
			if err := e.analytics.QueryRow(`SELECT min(customer_id) FROM customers WHERE state IS NOT 'CA'`).Scan(&joined); err != nil {
				t.Fatal(err)
			}
			e.exec(t, `UPDATE customers SET state = 'CA' WHERE customer_id = ?`, joined)

			run, err := e.run(t, eng)
			if err != nil {
				t.Fatal(err)
			}
			got, dups := records(rcv.take())
			after := e.members(t, "state = 'CA'")
			want := map[string]string{changed: store.OpUpsert, itoa64(joined): store.OpUpsert}
			if mode == "mirror" {
				want[left] = store.OpDelete
			}
			if dups != 0 || len(got) != len(want) {
				t.Fatalf("second run sent %v, want only %v", keysOf(got), want)
			}
			for key, op := range want {
				rec, ok := got[key]
				if !ok || rec.Op != op {
					t.Fatalf("member %s: got %+v, want op %s", key, rec, op)
				}
				if op == store.OpDelete {
					if len(rec.Fields) != 0 {
						t.Fatalf("a delete carries fields: %v", rec.Fields)
					}
					continue
				}
				wantFields(t, key, rec, after[key])
			}
			wantRemoved := int64(0)
			if mode == "mirror" {
				wantRemoved = 1
			}
			if run.Added != 1 || run.Changed != 1 || run.Removed != wantRemoved || run.State != store.RunSucceeded {
				t.Fatalf("run = %+v, want 1 added, 1 changed, %d removed", run, wantRemoved)
			}

			// Nothing changed since: a third run sends nothing.
			run, err = e.run(t, eng)
			if err != nil {
				t.Fatal(err)
			}
			if b := rcv.take(); len(b) != 0 || run.Added+run.Changed+run.Removed != 0 || run.State != store.RunSucceeded {
				t.Fatalf("an unchanged audience sent %d batches; run %+v", len(b), run)
			}
		})
	}
}

func TestAudienceChangeInMirrorModeSendsRemovals(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{mode: "mirror"})
	rcv := newReceiver()
	eng := e.engine(t, rcv, nil)
	if _, err := e.run(t, eng); err != nil {
		t.Fatal(err)
	}
	rcv.take()
	// The audience narrows to the pro plan: the others are removed.
	e.aud.Definition = mustJSON(t, map[string]any{"model": "customers", "conditions": map[string]any{"all": []any{
		map[string]any{"column": "state", "operator": "equals", "value": "CA"},
		map[string]any{"column": "plan", "operator": "equals", "value": "pro"}}}})
	if _, err := e.db.UpdateAudience(e.ctx, e.aud); err != nil {
		t.Fatal(err)
	}
	run, err := e.run(t, eng)
	if err != nil {
		t.Fatal(err)
	}
	gone := e.members(t, "state = 'CA' AND plan IS NOT 'pro'")
	got, _ := records(rcv.take())
	if len(got) != len(gone) || run.Removed != int64(len(gone)) || run.Added+run.Changed != 0 {
		t.Fatalf("sent %d records, run %+v; want exactly the %d members who left, as deletes", len(got), run, len(gone))
	}
	for key := range gone {
		if got[key].Op != store.OpDelete {
			t.Fatalf("member %s who left: got %+v, want a delete", key, got[key])
		}
	}
	// The receiver now holds exactly the audience.
	if held, want := len(rcv.state), len(e.members(t, "state = 'CA' AND plan = 'pro'")); held != want {
		t.Fatalf("receiver holds %d members, want %d", held, want)
	}
}

func TestAppendSendsEveryMemberEveryRun(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{mode: "append"})
	rcv := newReceiver()
	eng := e.engine(t, rcv, nil)
	want := e.members(t, "state = 'CA'")
	for i := range 2 {
		run, err := e.run(t, eng)
		if err != nil {
			t.Fatal(err)
		}
		got, dups := records(rcv.take())
		if dups != 0 || len(got) != len(want) || run.Added != int64(len(want)) {
			t.Fatalf("run %d sent %d (%d repeats), run %+v; want all %d members", i+1, len(got), dups, run, len(want))
		}
		for key := range want {
			if got[key].Op != store.OpAppend {
				t.Fatalf("run %d, member %s: %+v, want an append", i+1, key, got[key])
			}
		}
	}
}

func TestRefusedRecordsAreFailuresRetriedByTheNextRun(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{})
	rcv := newReceiver()
	refused := map[string]bool{}
	rcv.refuse = func(r store.SyncRecord) (string, bool) {
		n, _ := strconv.Atoi(r.Key)
		if n%5 == 0 {
			refused[r.Key] = true
			return "invalid email", true
		}
		return "", false
	}
	eng := e.engine(t, rcv, nil)
	run, err := e.run(t, eng)
	if err != nil {
		t.Fatal(err)
	}
	want := e.members(t, "state = 'CA'")
	if len(refused) == 0 || run.State != store.RunSucceeded || run.Failed != int64(len(refused)) ||
		run.Added != int64(len(want)-len(refused)) {
		t.Fatalf("run = %+v; want succeeded with %d failed and %d added", run, len(refused), len(want)-len(refused))
	}
	if n := e.plannerCount(t, `SELECT count(*) FROM sync_failures WHERE sync_id = ? AND reason = 'invalid email'
		AND run_id = ?`, e.sync.ID, run.ID); n != int64(len(refused)) {
		t.Fatalf("sync_failures holds %d rows, want %d", n, len(refused))
	}
	if n := e.plannerCount(t, `SELECT count(*) FROM sync_snapshot WHERE sync_id = ?`, e.sync.ID); n != int64(len(want)-len(refused)) {
		t.Fatalf("snapshot holds %d members; it must not advance for the %d refused", n, len(refused))
	}
	rcv.take()

	// The receiver is fixed: the next run sends exactly the refused ones.
	rcv.refuse = nil
	run, err = e.run(t, eng)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := records(rcv.take())
	if len(got) != len(refused) || run.Added != int64(len(refused)) || run.Failed != 0 {
		t.Fatalf("retry sent %d, run %+v; want the %d refused", len(got), run, len(refused))
	}
	for key := range refused {
		if _, ok := got[key]; !ok {
			t.Fatalf("refused member %s was not retried", key)
		}
	}
	if n := e.plannerCount(t, `SELECT count(*) FROM sync_failures WHERE sync_id = ?`, e.sync.ID); n != 0 {
		t.Fatalf("%d failures left after a retry the receiver took", n)
	}
}

func TestRunResumesAfterACrashBetweenBatches(t *testing.T) {
	t.Parallel()
	const k = 3
	for _, tc := range []struct {
		name string
		// cancelIn cancels the run while batch k+1 is being sent:
		// before the receiver takes it, or after (the answer is lost).
		taken bool
	}{
		{name: "before the receiver takes the batch"},
		{name: "after the receiver took the batch", taken: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, envOptions{})
			rcv := newReceiver()
			ctx, cancel := context.WithCancel(e.ctx)
			if tc.taken {
				rcv.after = func(b store.SyncBatch) {
					if b.Number == k+1 {
						cancel()
					}
				}
			} else {
				rcv.before = func(ctx context.Context, b store.SyncBatch) error {
					if b.Number == k+1 {
						cancel()
						return ctx.Err()
					}
					return nil
				}
			}
			eng := e.engine(t, rcv, nil)
			first, err := eng.Run(ctx, activation.Request{WorkspaceID: e.ws.ID, SyncID: e.sync.ID, Trigger: activation.TriggerSchedule, Source: store.SourceSystem})
			if !errors.Is(err, activation.ErrInterrupted) {
				t.Fatalf("interrupted run: %v, want ErrInterrupted", err)
			}
			stored, err := e.db.GetSyncRun(e.ctx, e.ws.ID, first.ID)
			wantLast := k
			if tc.taken {
				wantLast = k + 1
			}
			if err != nil || stored.State != store.RunRunning || stored.LastBatch != wantLast {
				t.Fatalf("interrupted run stored as %+v, %v; want running after batch %d", stored, err, wantLast)
			}

			// The restarted server runs the sync again.
			rcv.before, rcv.after = nil, nil
			second, err := e.run(t, eng)
			if err != nil {
				t.Fatal(err)
			}
			if second.ID != first.ID || second.State != store.RunSucceeded || second.Trigger != activation.TriggerSchedule {
				t.Fatalf("resumed run = %+v; want run %s resumed and succeeded", second, first.ID)
			}
			all := rcv.take()
			taken := map[int]int{}
			for _, b := range all {
				if b.RunID != first.ID {
					t.Fatalf("batch of run %s, want every batch of run %s", b.RunID, first.ID)
				}
				taken[b.Number]++
			}
			for n := 1; n <= second.LastBatch; n++ {
				if taken[n] != 1 {
					t.Fatalf("batch %d taken %d times, want once: %v", n, taken[n], taken)
				}
			}
			if len(taken) != second.LastBatch {
				t.Fatalf("batches %v, want 1 to %d", taken, second.LastBatch)
			}
			want := e.members(t, "state = 'CA'")
			got, dups := records(all)
			if dups != 0 || len(got) != len(want) || second.Added != int64(len(want)) {
				t.Fatalf("overall %d members sent (%d repeats), run %+v; want each of %d once", len(got), dups, second, len(want))
			}
		})
	}
}

func TestRunsOfOneSyncNeverOverlap(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{})
	rcv := newReceiver()
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	rcv.before = func(ctx context.Context, b store.SyncBatch) error {
		once.Do(func() { close(started) })
		<-release
		return nil
	}
	eng := e.engine(t, rcv, nil)
	done := make(chan error, 1)
	go func() {
		_, err := e.run(t, eng)
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the first run ended before sending: %v", err)
	}
	// A second engine, as another process would have, is refused too.
	for _, other := range []*activation.Engine{eng, e.engine(t, newReceiver(), nil)} {
		if _, err := e.run(t, other); !errors.Is(err, activation.ErrBusy) {
			t.Fatalf("second run while one is sending: %v, want ErrBusy", err)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}
	runs, err := e.db.ListSyncRuns(e.ctx, e.ws.ID, e.sync.ID, 0)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %v, %v; want the one run", runs, err)
	}
	// Once it is over, the sync runs again.
	if run, err := e.run(t, eng); err != nil || run.State != store.RunSucceeded {
		t.Fatalf("run after the first: %+v, %v", run, err)
	}
}

// leaky is a Governance that tries to send whatever it is told.
type leaky struct{ plan activation.FieldPlan }

func (l leaky) Plan(context.Context, activation.PlanInput) (activation.FieldPlan, error) {
	return l.plan, nil
}

func TestSyncsThatWouldSendWhatMayNotLeaveAreRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		mappings []store.FieldMapping
		gov      activation.Governance
		noOwner  bool
		want     []string
	}{
		{name: "blocked column mapped", mappings: []store.FieldMapping{{From: "email", To: "email"}, {From: "notes", To: "notes"}},
			want: []string{`"notes"`, "blocked", "remove the mapping"}},
		{name: "unknown column mapped", mappings: []store.FieldMapping{{From: "emial", To: "email"}},
			want: []string{`"emial"`, "not a column of model customers"}},
		{name: "governance that lets a blocked column through",
			gov:  leaky{activation.FieldPlan{Fields: []activation.Field{{Column: "notes", To: "notes", Transform: activation.TransformNone}}}},
			want: []string{`"notes"`, "blocked"}},
		{name: "two columns to one field", mappings: []store.FieldMapping{{From: "email", To: "x"}, {From: "plan", To: "x"}},
			want: []string{`"x"`, "more than once"}},
		{name: "no owner", noOwner: true, want: []string{"no owner"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, envOptions{mappings: tc.mappings})
			if tc.noOwner {
				s, err := e.db.CreateSync(e.ctx, store.Sync{WorkspaceID: e.ws.ID, AudienceID: e.aud.ID, DestinationID: e.dest.ID,
					Mode: "upsert", Mappings: []store.FieldMapping{{From: "plan", To: "plan"}}})
				if err != nil {
					t.Fatal(err)
				}
				e.sync = s
			}
			rcv := newReceiver()
			_, err := e.run(t, e.engine(t, rcv, tc.gov))
			if !errors.Is(err, activation.ErrRefused) {
				t.Fatalf("run: %v, want ErrRefused", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if b := rcv.take(); len(b) != 0 {
				t.Fatalf("a refused sync sent %d batches", len(b))
			}
			if runs, err := e.db.ListSyncRuns(e.ctx, e.ws.ID, e.sync.ID, 0); err != nil || len(runs) != 0 {
				t.Fatalf("a refused sync recorded runs %v, %v", runs, err)
			}
		})
	}
}

func TestRunReadsWithTheOwnersAccessFilters(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{})
	// The owner may see only free-plan customers: the sync sends no
	// other, whatever the audience says.
	if _, err := e.db.PutAccessFilter(e.ctx, store.AccessFilter{WorkspaceID: e.ws.ID, Group: "free-only",
		Table: "analytics.customers", Column: "plan", Operator: "equals", Value: "free"}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.AddToGroup(e.ctx, e.ws.ID, e.owner.MemberID, "free-only"); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver()
	if _, err := e.run(t, e.engine(t, rcv, nil)); err != nil {
		t.Fatal(err)
	}
	got, _ := records(rcv.take())
	want := e.members(t, "state = 'CA' AND plan = 'free'")
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("sent %d members, want the %d the owner may see", len(got), len(want))
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Fatalf("member %s, hidden from the owner, was sent", key)
		}
	}
}

func TestGovernanceSkipRuleKeepsMembersOut(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{})
	gov := leaky{activation.FieldPlan{
		Fields:      []activation.Field{{Column: "email", To: "email", Transform: activation.TransformSHA256}, {Column: "phone", To: "phone", Transform: activation.TransformDrop}},
		RequireTrue: []string{"marketing_consent"},
	}}
	rcv := newReceiver()
	run, err := e.run(t, e.engine(t, rcv, gov))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := records(rcv.take())
	want := e.members(t, "state = 'CA' AND marketing_consent = 1")
	skipped := len(e.members(t, "state = 'CA'")) - len(want)
	if skipped == 0 || len(got) != len(want) || run.Skipped != int64(skipped) {
		t.Fatalf("sent %d, run %+v; want %d consented sent and %d skipped", len(got), run, len(want), skipped)
	}
	for key, rec := range got {
		if _, ok := want[key]; !ok {
			t.Fatalf("member %s without consent was sent", key)
		}
		if _, ok := rec.Fields["phone"]; ok || len(rec.Fields) != 1 {
			t.Fatalf("member %s: fields %v, want only the hashed email", key, rec.Fields)
		}
	}
}

func TestDeliveryFailureFailsTheRunAndTheNextRunStartsOver(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{})
	rcv := newReceiver()
	rcv.before = func(_ context.Context, b store.SyncBatch) error {
		if b.Number == 2 {
			return fmt.Errorf("receiver answered 503 at https://secret.example/hook: %w", store.ErrDeliveryFailed)
		}
		return nil
	}
	eng := e.engine(t, rcv, nil)
	run, err := e.run(t, eng)
	if !errors.Is(err, activation.ErrFailed) || run.State != store.RunFailed || run.LastBatch != 1 {
		t.Fatalf("run = %+v, %v; want failed after batch 1", run, err)
	}
	if strings.Contains(run.Error, "secret") || !strings.Contains(run.Error, "batch 2") {
		t.Fatalf("run error %q: want it to name the batch and nothing of the receiver's answer", run.Error)
	}
	first, _ := records(rcv.take())
	rcv.before = nil
	run, err = e.run(t, eng)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := records(rcv.take())
	want := e.members(t, "state = 'CA'")
	for key := range first {
		if _, again := second[key]; again {
			t.Fatalf("member %s of the acknowledged batch was sent again", key)
		}
	}
	if len(first)+len(second) != len(want) || run.Added != int64(len(second)) {
		t.Fatalf("sent %d then %d, want %d in all", len(first), len(second), len(want))
	}
}

func keysOf(m map[string]store.SyncRecord) []string {
	var out []string
	for k, r := range m {
		out = append(out, k+":"+r.Op)
	}
	slices.Sort(out)
	return out
}
