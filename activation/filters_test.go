package activation_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/activation"
	"github.com/signalsmith/agent-server/store"
)

// addFilter stores a destination filter of the env's workspace.
func (e *env) addFilter(tb testing.TB, f store.DestinationFilter) store.DestinationFilter {
	tb.Helper()
	f.WorkspaceID = e.ws.ID
	if f.Reason == "" {
		f.Reason = "test rule"
	}
	f, err := e.db.CreateDestinationFilter(e.ctx, f)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// retarget points the env's sync at a new destination of a category.
func (e *env) retarget(tb testing.TB, category string) {
	tb.Helper()
	d, err := e.db.CreateDestination(e.ctx, store.Destination{WorkspaceID: e.ws.ID, Name: "Receiver " + category, Type: "webhook",
		Category: category, Environment: "production", Config: map[string]any{"url": "https://127.0.0.1/hook", "batch_size": 40}})
	if err != nil {
		tb.Fatal(err)
	}
	s := e.sync
	s.ID, s.DestinationID = "", d.ID
	if e.sync, err = e.db.CreateSync(e.ctx, s); err != nil {
		tb.Fatal(err)
	}
	e.dest = d
}

// governance is the FilterGovernance over the env's store.
func (e *env) governance() activation.FilterGovernance {
	return activation.FilterGovernance{Filters: e.db, Audit: e.db}
}

// governanceEvents returns the SYSTEM events about the env's sync.
func (e *env) governanceEvents(tb testing.TB) []store.AuditEvent {
	tb.Helper()
	evs, err := e.db.Audit(e.ctx, store.AuditFilter{WorkspaceID: e.ws.ID, Source: store.SourceSystem})
	if err != nil {
		tb.Fatal(err)
	}
	var out []store.AuditEvent
	for _, ev := range evs {
		if ev.ResourceID == e.sync.ID {
			out = append(out, ev)
		}
	}
	return out
}

func TestDestinationFiltersShapeWhatLeaves(t *testing.T) {
	t.Parallel()
	const email = "alice@example.com"
	for _, tc := range []struct {
		name    string
		filters []store.DestinationFilter
		// email is how the email field leaves: "hashed", "clear" or
		// "absent"; city likewise.
		email, city string
		// event is the decision of the governance event, "" for none.
		event string
	}{
		{"no filter: redacted hashed", nil, "hashed", "clear", ""},
		{"drop removes the field", []store.DestinationFilter{{Column: "city", Effect: store.FilterDrop}}, "hashed", "absent", store.DecisionAllowed},
		{"sha256 hashes a clear column", []store.DestinationFilter{{Column: "city", Effect: store.FilterHash}}, "hashed", "hashed", ""},
		{"allow lets a redacted column leave as it is", []store.DestinationFilter{{PIILevel: store.PIIRedacted, Effect: store.FilterAllow}}, "clear", "clear", ""},
		{"lower priority decides: allow first", []store.DestinationFilter{
			{Priority: 1, Column: "email", Effect: store.FilterAllow}, {Priority: 2, Column: "email", Effect: store.FilterHash}}, "clear", "clear", ""},
		{"lower priority decides: sha256 first", []store.DestinationFilter{
			{Priority: 1, Column: "email", Effect: store.FilterHash}, {Priority: 2, Column: "email", Effect: store.FilterAllow}}, "hashed", "clear", ""},
		{"every matching rule applies: allow and drop", []store.DestinationFilter{
			{Priority: 1, Column: "email", Effect: store.FilterAllow}, {Priority: 9, Column: "email", Effect: store.FilterDrop}}, "absent", "clear", store.DecisionAllowed},
		{"a filter of another category does not apply", []store.DestinationFilter{{Category: "advertising", Column: "city", Effect: store.FilterDrop}}, "hashed", "clear", ""},
		{"a filter of a sandbox does not apply", []store.DestinationFilter{{Environment: "sandbox", Column: "email", Effect: store.FilterBlock}}, "hashed", "clear", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, envOptions{conditions: []any{map[string]any{"column": "customer_id", "operator": "equals", "value": 1}}})
			e.exec(t, `UPDATE customers SET email = ?, city = 'Fresno' WHERE customer_id = 1`, email)
			for _, f := range tc.filters {
				e.addFilter(t, f)
			}
			rcv := newReceiver()
			if _, err := e.run(t, e.engine(t, rcv, e.governance())); err != nil {
				t.Fatal(err)
			}
			got, _ := records(rcv.take())
			rec, ok := got["1"]
			if !ok || len(got) != 1 {
				t.Fatalf("sent %v, want member 1", got)
			}
			for _, c := range []struct{ field, want, clear string }{{"email", tc.email, email}, {"city", tc.city, "Fresno"}} {
				v, has := rec.Fields[c.field]
				var form string
				switch {
				case !has:
					form = "absent"
				case v == c.clear:
					form = "clear"
				case v == hashed(c.clear):
					form = "hashed"
				default:
					form = "unexpected"
				}
				if form != c.want {
					t.Errorf("%s left %s (%v), want %s", c.field, form, v, c.want)
				}
			}
			evs := e.governanceEvents(t)
			switch {
			case tc.event == "" && len(evs) != 0:
				t.Errorf("governance events %+v, want none", evs)
			case tc.event != "" && (len(evs) != 1 || evs[0].Decision != tc.event || !strings.Contains(evs[0].Result, "dropped")):
				t.Errorf("governance events %+v, want one %s event naming the dropped field", evs, tc.event)
			}
		})
	}
}

func TestDestinationFilterBlockRefusesTheRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		filters []store.DestinationFilter
	}{
		{"block of a mapped column", []store.DestinationFilter{{Column: "city", Effect: store.FilterBlock, Reason: "cities stay in house"}}},
		{"block wins over an allow of higher priority", []store.DestinationFilter{
			{Priority: 1, Column: "email", Effect: store.FilterAllow}, {Priority: 50, PIILevel: store.PIIRedacted, Effect: store.FilterBlock, Reason: "cities stay in house"}}},
		{"block of the destination's category", []store.DestinationFilter{{Category: "crm", Effect: store.FilterBlock, Reason: "cities stay in house"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, envOptions{})
			var want []string
			for _, f := range tc.filters {
				f = e.addFilter(t, f)
				if f.Effect == store.FilterBlock {
					want = append(want, f.ID)
				}
			}
			rcv := newReceiver()
			_, err := e.run(t, e.engine(t, rcv, e.governance()))
			if !errors.Is(err, activation.ErrRefused) || !strings.Contains(err.Error(), "cities stay in house") || !strings.Contains(err.Error(), want[0]) {
				t.Fatalf("run: %v, want refused with the filter's id and reason", err)
			}
			if n := len(rcv.take()); n != 0 {
				t.Fatalf("%d batches sent by a refused run", n)
			}
			evs := e.governanceEvents(t)
			if len(evs) != 1 || evs[0].Decision != store.DecisionDenied || len(evs[0].Rules) != 1 || !strings.HasSuffix(evs[0].Rules[0], want[0]) {
				t.Fatalf("governance events %+v, want one denied event naming filter %s", evs, want[0])
			}
		})
	}
}

func TestBlockedColumnsNeverLeaveWhateverTheFilters(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{mappings: []store.FieldMapping{{From: "email", To: "email"}, {From: "notes", To: "notes"}}})
	e.addFilter(t, store.DestinationFilter{Column: "notes", Effect: store.FilterAllow})
	rcv := newReceiver()
	if _, err := e.run(t, e.engine(t, rcv, e.governance())); !errors.Is(err, activation.ErrRefused) || !strings.Contains(err.Error(), "blocked") {
		t.Fatalf("run: %v, want refused: notes is blocked", err)
	}
	if n := len(rcv.take()); n != 0 {
		t.Fatalf("%d batches sent", n)
	}
}

func TestConsentKeepsMembersFromAdvertising(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		category string
		allow    bool
		// consentedOnly: only members with marketing_consent are sent.
		consentedOnly bool
	}{
		{"advertising without a filter", "advertising", false, true},
		{"marketing without a filter", "marketing", false, true},
		{"advertising with allow_unconsented", "advertising", true, false},
		{"crm needs no consent", "crm", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, envOptions{})
			if tc.category != "crm" {
				e.retarget(t, tc.category)
			}
			if tc.allow {
				e.addFilter(t, store.DestinationFilter{DestinationID: e.dest.ID, Effect: store.FilterAllowUnconsented})
			}
			rcv := newReceiver()
			run, err := e.run(t, e.engine(t, rcv, e.governance()))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := records(rcv.take())
			all, want := e.members(t, "state = 'CA'"), e.members(t, "state = 'CA'")
			if tc.consentedOnly {
				want = e.members(t, "state = 'CA' AND marketing_consent = 1")
			}
			if len(want) == len(all) && tc.consentedOnly {
				t.Fatal("the demo has no member without consent")
			}
			if len(got) != len(want) || run.Skipped != int64(len(all)-len(want)) {
				t.Fatalf("sent %d, skipped %d; want %d sent, %d skipped", len(got), run.Skipped, len(want), len(all)-len(want))
			}
			for key, rec := range got {
				if _, ok := want[key]; !ok {
					t.Fatalf("member %s without consent was sent", key)
				}
				if _, ok := rec.Fields[activation.ConsentColumn]; ok {
					t.Fatalf("member %s: the consent column was sent", key)
				}
			}
		})
	}
}

func TestRateLimitCapsRecordsAndTheRestFollow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		per   string
		limit int64
		// second is what the second run sends.
		second func(total int) int
	}{
		{"per run", store.PerRun, 50, func(total int) int { return min(50, total-50) }},
		{"per hour", store.PerHour, 70, func(int) int { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, envOptions{})
			e.addFilter(t, store.DestinationFilter{DestinationID: e.dest.ID, Effect: store.FilterRateLimit, Limit: tc.limit, Per: tc.per})
			total := len(e.members(t, "state = 'CA'"))
			if total < 2*int(tc.limit) {
				t.Fatalf("the demo has %d members, too few", total)
			}
			rcv := newReceiver()
			eng := e.engine(t, rcv, e.governance())
			run, err := e.run(t, eng)
			if err != nil {
				t.Fatal(err)
			}
			first, _ := records(rcv.take())
			if len(first) != int(tc.limit) || run.Added != tc.limit {
				t.Fatalf("first run sent %d (added %d), want %d", len(first), run.Added, tc.limit)
			}
			if _, err := e.run(t, eng); err != nil {
				t.Fatal(err)
			}
			second, _ := records(rcv.take())
			if len(second) != tc.second(total) {
				t.Fatalf("second run sent %d, want %d", len(second), tc.second(total))
			}
			for key := range second {
				if _, ok := first[key]; ok {
					t.Fatalf("member %s sent again", key)
				}
			}
		})
	}
}

// TestSyncTransformsAreNeverLoosenedByFilters: a sync's own sha256 or drop
// holds whatever a person's filter allows, and hashes a column that may
// leave as it is.
func TestSyncTransformsAreNeverLoosenedByFilters(t *testing.T) {
	t.Parallel()
	const email = "alice@example.com"
	e := setup(t, envOptions{
		conditions: []any{map[string]any{"column": "customer_id", "operator": "equals", "value": 1}},
		mappings: []store.FieldMapping{
			{From: "email", To: "email", Transform: store.TransformSHA256},
			{From: "city", To: "city", Transform: store.TransformSHA256},
			{From: "plan", To: "plan", Transform: store.TransformDrop},
		},
	})
	e.exec(t, `UPDATE customers SET email = ?, city = 'Fresno' WHERE customer_id = 1`, email)
	e.addFilter(t, store.DestinationFilter{PIILevel: store.PIIRedacted, Effect: store.FilterAllow})
	rcv := newReceiver()
	if _, err := e.run(t, e.engine(t, rcv, e.governance())); err != nil {
		t.Fatal(err)
	}
	got, _ := records(rcv.take())
	rec, ok := got["1"]
	if !ok {
		t.Fatalf("sent %v, want member 1", got)
	}
	if rec.Fields["email"] != hashed(email) || rec.Fields["city"] != hashed("Fresno") {
		t.Errorf("email %v and city %v, want both hashed as the sync asks", rec.Fields["email"], rec.Fields["city"])
	}
	if _, has := rec.Fields["plan"]; has {
		t.Errorf("plan was sent although the sync drops it: %v", rec.Fields)
	}
}
