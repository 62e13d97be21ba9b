package server_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/store"
)

// caBuyers is "customers in California, not on the free plan, with at
// least 2 orders in the last 365 days": the shape of the issue's example
// audience, loose enough to have members in the small test warehouse (the
// audience package's tests check the exact example on a larger one).
var caBuyers = map[string]any{
	"model": "customers",
	"conditions": map[string]any{"all": []any{
		map[string]any{"column": "state", "operator": "equals", "value": "CA"},
		map[string]any{"column": "plan", "operator": "not_equals", "value": "free"},
		map[string]any{"relationship": "orders", "aggregate": "count", "operator": "greater_or_equal", "value": 2,
			"within": map[string]any{"column": "ordered_at", "last_days": 365},
			"where":  map[string]any{"column": "channel", "operator": "in", "value": []any{"web", "app", "store"}}},
	}},
}

// caProWeb is the issue's example: "customers in California on the pro
// plan with at least 2 web orders in the last 90 days".
var caProWeb = map[string]any{
	"model": "customers",
	"conditions": map[string]any{"all": []any{
		map[string]any{"column": "state", "operator": "equals", "value": "CA"},
		map[string]any{"column": "plan", "operator": "equals", "value": "pro"},
		map[string]any{"relationship": "orders", "aggregate": "count", "operator": "greater_or_equal", "value": 2,
			"within": map[string]any{"column": "ordered_at", "last_days": 90},
			"where":  map[string]any{"column": "channel", "operator": "equals", "value": "web"}},
	}},
}

// TestDemoMemberSavesTheExampleAudience is the example on the demo
// at its default scale, with the demo member key's role.
func TestDemoMemberSavesTheExampleAudience(t *testing.T) {
	t.Parallel()
	e := setupOn(t, defaultScaleWarehouse)
	key, _ := e.key(t, "demo-agent", "member", store.KindAgent, nil)
	c := e.client(t, key)
	var p struct {
		Count int64 `json:"count"`
	}
	structured(t, call(t, c, "preview_audience", map[string]any{"definition": caProWeb, "limit": 5}), &p)
	want := handCount(t, e, `SELECT count(*) FROM customers c WHERE c.state = 'CA' AND c.plan = 'pro' AND
		(SELECT count(*) FROM orders o WHERE o.customer_id = c.customer_id AND o.channel = 'web'
		 AND o.ordered_at >= strftime('%Y-%m-%d %H:%M:%S', 'now', '-90 days')) >= 2`)
	if want == 0 || p.Count != want {
		t.Fatalf("preview_audience counts %d, hand-written SQL %d", p.Count, want)
	}
	var created struct {
		Audience struct {
			ID string `json:"id"`
		} `json:"audience"`
		EstimatedSize int64 `json:"estimated_size"`
	}
	structured(t, call(t, c, "create_audience", map[string]any{"name": "CA pro web buyers", "definition": caProWeb}), &created)
	if created.EstimatedSize != want || created.Audience.ID == "" {
		t.Fatalf("create_audience = %+v", created)
	}
	structured(t, call(t, c, "preview_audience", map[string]any{"audience": created.Audience.ID}), &p)
	if p.Count != want {
		t.Errorf("the saved audience counts %d, want %d", p.Count, want)
	}
}

func TestAgentBuildsPreviewsAndSavesAnAudience(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)

	var p struct {
		Count  int64            `json:"count"`
		Sample []map[string]any `json:"sample"`
		SQL    string           `json:"sql"`
	}
	structured(t, call(t, c, "preview_audience", map[string]any{"definition": caBuyers, "limit": 100}), &p)
	want := handCount(t, e, `SELECT count(*) FROM customers c WHERE c.state = 'CA' AND c.plan <> 'free' AND
		(SELECT count(*) FROM orders o WHERE o.customer_id = c.customer_id AND o.channel IN ('web', 'app', 'store')
		 AND o.ordered_at >= strftime('%Y-%m-%d %H:%M:%S', 'now', '-365 days')) >= 2`)
	if p.Count != want || want == 0 {
		t.Fatalf("preview count %d, hand-written SQL %d", p.Count, want)
	}
	if int64(len(p.Sample)) != min(want, 100) {
		t.Errorf("sample of %d for %d members", len(p.Sample), want)
	}
	for _, row := range p.Sample {
		if row["state"] != "CA" || row["email"] != nil && row["email"] != "***" {
			t.Fatalf("sample row %v", row)
		}
		if _, ok := row["notes"]; ok {
			t.Fatal("blocked column in the sample")
		}
	}
	if strings.Contains(p.SQL, "'CA'") {
		t.Errorf("a value is in the SQL instead of a parameter: %s", p.SQL)
	}

	var created struct {
		Audience struct {
			ID      string `json:"id"`
			Version int    `json:"version"`
		} `json:"audience"`
		EstimatedSize int64 `json:"estimated_size"`
	}
	structured(t, call(t, c, "create_audience", map[string]any{"name": "CA pro web buyers", "definition": caBuyers}), &created)
	if created.Audience.Version != 1 || created.EstimatedSize != want {
		t.Fatalf("create_audience = %+v", created)
	}
	ev := e.lastAudit(t)
	if ev.Tool != "create_audience" || ev.ResourceID != created.Audience.ID || (ev.Decision != store.DecisionAllowed && ev.Decision != store.DecisionExecuted) {
		t.Errorf("audit of create = %+v", ev)
	}

	narrower := map[string]any{"model": "customers", "conditions": map[string]any{"all": []any{
		map[string]any{"column": "state", "operator": "equals", "value": "CA"},
		map[string]any{"column": "plan", "operator": "in", "value": []any{"pro", "enterprise"}},
	}}}
	var updated struct {
		Audience struct {
			Version int `json:"version"`
		} `json:"audience"`
		SizeChange int64 `json:"size_change"`
	}
	structured(t, call(t, c, "update_audience", map[string]any{"audience": created.Audience.ID, "definition": narrower}), &updated)
	proOrEnt := handCount(t, e, `SELECT count(*) FROM customers WHERE state = 'CA' AND plan IN ('pro', 'enterprise')`)
	if proOrEnt == want {
		t.Fatal("the test needs definitions of different sizes")
	}
	if updated.Audience.Version != 2 || updated.SizeChange != proOrEnt-want {
		t.Errorf("update_audience = %+v, want version 2 and size change %d", updated, proOrEnt-want)
	}
	var got struct {
		Version int `json:"version"`
	}
	structured(t, call(t, c, "get_audience", map[string]any{"audience": created.Audience.ID}), &got)
	if got.Version != 2 {
		t.Errorf("get_audience version %d", got.Version)
	}
}

func TestBadAudienceDefinitionsAreExplained(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	before := e.counts(t)
	cases := []struct {
		def  any
		want string
	}{
		{map[string]any{"model": "customers", "conditions": map[string]any{"column": "stat", "operator": "equals", "value": "CA"}}, `did you mean "state"`},
		{map[string]any{"model": "customerz", "conditions": map[string]any{"all": []any{}}}, `customers`},
		{map[string]any{"model": "customers", "conditions": map[string]any{"column": "notes", "operator": "contains", "value": "x"}}, "blocked"},
		{map[string]any{"model": "customers", "conditions": map[string]any{"column": "lifetime_value", "operator": "contains", "value": "x"}}, "conditions"},
		{"not an object", "not valid"},
	}
	for _, tc := range cases {
		for tool, args := range map[string]map[string]any{
			"preview_audience": {"definition": tc.def},
			"create_audience":  {"name": "x", "definition": tc.def},
		} {
			res := call(t, c, tool, args)
			if !res.IsError || !strings.Contains(text(res), tc.want) {
				t.Errorf("%s(%v) = %v %q, want an error containing %q", tool, args, res.IsError, text(res), tc.want)
			}
		}
	}
	after := e.counts(t)
	for table, n := range after {
		if table != "audit_events" && n != before[table] {
			t.Errorf("%s changed from %d to %d rows on bad input", table, before[table], n)
		}
	}
}

func TestLargeAudienceNeedsApprovalWithItsSize(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, `policies:
  - id: big-audience
    type: require_approval
    resources: [audience]
    operations: [create, update]
    sources: [AI]
    condition: facts.estimated_size > 100
    message: the audience would hold more than 100 people
`))
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	everyone := map[string]any{"model": "customers", "conditions": map[string]any{"all": []any{}}}
	var q struct {
		ApprovalID string `json:"approval_id"`
	}
	structured(t, call(t, c, "create_audience", map[string]any{"name": "everyone", "definition": everyone}), &q)
	a, err := e.db.GetApproval(context.Background(), e.ws.ID, q.ApprovalID)
	if err != nil || a.Facts["estimated_size"] != float64(demoScale) || a.Rules[0] != "big-audience" {
		t.Fatalf("approval = %+v (%v), want the size %d in its facts", a, err, demoScale)
	}
	list, _ := e.db.ListAudiences(context.Background(), e.ws.ID)
	for _, x := range list {
		if x.Name == "everyone" {
			t.Fatal("the queued audience was created before approval")
		}
	}
	small := map[string]any{"model": "customers", "conditions": map[string]any{"column": "state", "operator": "equals", "value": "CA"}}
	if res := call(t, c, "create_audience", map[string]any{"name": "californians", "definition": small}); res.IsError || strings.Contains(text(res), "approval") {
		t.Fatalf("a small audience: %s", text(res))
	}
}

func TestAgentDeletionWaitsForAHuman(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	var created struct {
		Audience struct {
			ID string `json:"id"`
		} `json:"audience"`
	}
	small := map[string]any{"model": "customers", "conditions": map[string]any{"column": "state", "operator": "equals", "value": "NY"}}
	structured(t, call(t, c, "create_audience", map[string]any{"name": "new yorkers", "definition": small}), &created)
	var q struct {
		ApprovalID string `json:"approval_id"`
	}
	structured(t, call(t, c, "delete_audience", map[string]any{"audience": created.Audience.ID}), &q)
	if _, err := e.db.GetAudience(context.Background(), e.ws.ID, created.Audience.ID); err != nil {
		t.Fatalf("the audience is gone before approval: %v", err)
	}
	_, adminKey := e.key(t, "boss", "admin", store.KindUser, nil)
	admin, err := e.db.Principal(context.Background(), adminKey.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := approvals.NewQueue(e.db, e.rbac, 0).Decide(context.Background(), admin, store.SourceUI, q.ApprovalID, true, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err = e.srv.Gate().Execute(context.Background(), a, store.SourceUI)
	if err != nil || a.State != store.ApprovalSucceeded {
		t.Fatalf("execution: %+v %v", a, err)
	}
	if _, err := e.db.GetAudience(context.Background(), e.ws.ID, created.Audience.ID); err == nil {
		t.Fatal("the approved deletion did not delete")
	}
	// The seeded sync sends "California pro customers": deleting it is
	// refused at once, with the reason, and never queued.
	auds, _ := e.db.ListAudiences(context.Background(), e.ws.ID)
	var synced string
	for _, x := range auds {
		if x.Name == "California pro customers" {
			synced = x.ID
		}
	}
	if res := call(t, c, "delete_audience", map[string]any{"audience": synced}); !res.IsError || !strings.Contains(text(res), "sync") {
		t.Fatalf("deleting a synced audience: %v %q", res.IsError, text(res))
	}
}

// handCount runs hand-written SQL on the test warehouse's analytics file.
func handCount(t *testing.T, e *env, query string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.whDir, "analytics.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
