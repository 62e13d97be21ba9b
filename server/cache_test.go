package server_test

import (
	"context"
	"testing"

	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// otherProcess opens a second store handle on the running server's data
// directory, as the command line does from another process.
func (e *env) otherProcess(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), e.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestChangesFromAnotherProcessApplyOnTheNextCall makes each kind of
// change through a second store handle while the server runs, after a call
// that warmed the server's caches, and checks the very next call.
func TestChangesFromAnotherProcessApplyOnTheNextCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		opts []func(*server.Config)
		run  func(t *testing.T, e *env, other *sqlite.DB)
	}{
		{"revoked key", []func(*server.Config){withPolicies(t, allowAll)}, func(t *testing.T, e *env, other *sqlite.DB) {
			key, k := e.key(t, "ada", "member", store.KindUser, nil)
			c := e.client(t, key)
			call(t, c, "list_models", map[string]any{})
			if _, err := other.RevokeKey(ctx, e.ws.ID, k.ID, k.CreatedAt); err != nil {
				t.Fatal(err)
			}
			if res, err := tryCall(c, "list_models", map[string]any{}); err == nil && !res.IsError {
				t.Errorf("a key revoked from another process still works: %s", text(res))
			}
		}},
		{"role change", []func(*server.Config){withPolicies(t, allowAll)}, func(t *testing.T, e *env, other *sqlite.DB) {
			key, k := e.key(t, "ada", "admin", store.KindUser, nil)
			c := e.client(t, key)
			call(t, c, "search_audit", map[string]any{"limit": 1})
			if err := other.SetMemberRole(ctx, e.ws.ID, k.MemberID, "member"); err != nil {
				t.Fatal(err)
			}
			if res := call(t, c, "search_audit", map[string]any{"limit": 1}); !res.IsError {
				t.Error("search_audit still allowed after another process made the admin a member")
			}
		}},
		{"access filter", []func(*server.Config){withPolicies(t, allowAll)}, func(t *testing.T, e *env, other *sqlite.DB) {
			emea := e.warehouseCount(t, "SELECT count(*) FROM customers WHERE region = 'EMEA'")
			if emea == 0 || emea >= 100 {
				t.Fatalf("%d EMEA customers: the test needs some, fewer than 100", emea)
			}
			key, k := e.key(t, "ada", "member", store.KindUser, nil)
			c := e.client(t, key)
			preview := func() (rows, others int) {
				t.Helper()
				var p previewResult
				structured(t, call(t, c, "preview_model", map[string]any{"model": "customers", "limit": 100}), &p)
				for _, row := range p.Rows {
					if row["region"] != "EMEA" {
						others++
					}
				}
				return len(p.Rows), others
			}
			if rows, others := preview(); rows != 100 || others == 0 {
				t.Fatalf("unfiltered preview: %d rows, %d outside EMEA", rows, others)
			}
			if _, err := other.PutAccessFilter(ctx, store.AccessFilter{WorkspaceID: e.ws.ID, Group: "emea-team",
				Table: "analytics.customers", Column: "region", Operator: store.FilterEquals, Value: "EMEA"}); err != nil {
				t.Fatal(err)
			}
			if err := other.AddToGroup(ctx, e.ws.ID, k.MemberID, "emea-team"); err != nil {
				t.Fatal(err)
			}
			if rows, others := preview(); rows != emea || others != 0 {
				t.Errorf("after another process filtered the member to EMEA: %d rows, %d outside EMEA; want %d, none", rows, others, emea)
			}
		}},
		{"kill switch", []func(*server.Config){withPolicies(t, allowAll)}, func(t *testing.T, e *env, other *sqlite.DB) {
			key, _ := e.key(t, "ada-bot", "member", store.KindAgent, nil)
			c := e.client(t, key)
			create := func(name string) bool {
				t.Helper()
				res := call(t, c, "create_model", map[string]any{"name": name, "sql": "select customer_id, plan from customers", "primary_key": "customer_id"})
				return !res.IsError
			}
			if !create("first") {
				t.Fatal("create_model refused before any freeze")
			}
			if err := other.SetWritesFrozen(ctx, e.ws.ID, true); err != nil {
				t.Fatal(err)
			}
			if create("second") {
				t.Error("an agent wrote after another process froze AI writes")
			}
			if err := other.SetWritesFrozen(ctx, e.ws.ID, false); err != nil {
				t.Fatal(err)
			}
			if !create("second") {
				t.Error("an agent could not write after another process unfroze AI writes")
			}
		}},
		{"policy set", []func(*server.Config){func(c *server.Config) { c.StoredPolicies = true }}, func(t *testing.T, e *env, other *sqlite.DB) {
			key, _ := e.key(t, "ada", "member", store.KindUser, nil)
			c := e.client(t, key)
			call(t, c, "list_models", map[string]any{})
			noReads := store.PolicySet{Version: "no-reads-1", AppliedBy: "operator", Source: `policies:
  - id: no-ai-reads
    type: deny
    resources: ["*"]
    operations: [read]
    sources: [AI]
    message: no reads today
`}
			if err := other.ApplyPolicySet(ctx, e.ws.ID, noReads); err != nil {
				t.Fatal(err)
			}
			if res := call(t, c, "list_models", map[string]any{}); !res.IsError {
				t.Error("list_models allowed after another process applied a policy set that denies reads")
			}
			if err := other.ApplyPolicySet(ctx, e.ws.ID, store.PolicySet{AppliedBy: "operator"}); err != nil {
				t.Fatal(err)
			}
			if res := call(t, c, "list_models", map[string]any{}); res.IsError {
				t.Errorf("list_models denied after another process reset the policies: %s", text(res))
			}
		}},
		{"pii classification", []func(*server.Config){withPolicies(t, allowAll)}, func(t *testing.T, e *env, other *sqlite.DB) {
			key, _ := e.key(t, "ada", "member", store.KindUser, nil)
			c := e.client(t, key)
			planPII := func() string {
				t.Helper()
				var m store.Model
				structured(t, call(t, c, "get_model", map[string]any{"model": "customers"}), &m)
				col, _ := m.Column("plan")
				return col.PII
			}
			if got := planPII(); got != store.PIINone {
				t.Fatalf("plan is %q before the change, want none", got)
			}
			if err := other.SetPIIClasses(ctx, e.ws.ID, []store.PIIClass{
				{Column: "analytics.customers.plan", Level: store.PIIBlocked, UpdatedBy: "operator"}}); err != nil {
				t.Fatal(err)
			}
			if got := planPII(); got != store.PIIBlocked {
				t.Errorf("plan is %q after another process blocked it, want blocked", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, tt.opts...)
			tt.run(t, e, e.otherProcess(t))
		})
	}
}
