package sqlite_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// cli opens a second handle on the bundle's data directory: what the
// command line is to a running server, another process's store.
func cli(t *testing.T, b *bundle) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(b.ctx, b.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestChangesFromAnotherProcessApplyOnTheNextRead warms the server
// handle's caches, makes one change through a second handle on the same
// files, and checks that the server handle's next read sees it.
func TestChangesFromAnotherProcessApplyOnTheNextRead(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name string
		// warm reads through srv (filling its caches) and returns a
		// check of srv's state after the change.
		run func(t *testing.T, b *bundle, srv, other *sqlite.DB)
	}{
		{"revoked key", func(t *testing.T, b *bundle, srv, other *sqlite.DB) {
			k := createKey(t, b, store.NewKey{MemberName: "ada", Role: "member"})
			mustPrincipal(t, b, srv, k.ID)
			if _, err := other.RevokeKey(b.ctx, b.ws.ID, k.ID, now); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Principal(b.ctx, k.ID, now); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("principal of a key revoked elsewhere: %v, want ErrNotFound", err)
			}
		}},
		{"rotated key", func(t *testing.T, b *bundle, srv, other *sqlite.DB) {
			k := createKey(t, b, store.NewKey{MemberName: "ada", Role: "member"})
			mustPrincipal(t, b, srv, k.ID)
			prefix := newPrefix(t)
			next, err := other.ReplaceKey(b.ctx, b.ws.ID, k.ID, prefix, fakeHash(prefix), now)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Principal(b.ctx, k.ID, now); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("principal of a key rotated elsewhere: %v, want ErrNotFound", err)
			}
			mustPrincipal(t, b, srv, next.ID)
		}},
		{"role change", func(t *testing.T, b *bundle, srv, other *sqlite.DB) {
			k := createKey(t, b, store.NewKey{MemberName: "ada", Role: "admin"})
			mustPrincipal(t, b, srv, k.ID)
			if err := other.SetMemberRole(b.ctx, b.ws.ID, k.MemberID, "member"); err != nil {
				t.Fatal(err)
			}
			if p := mustPrincipal(t, b, srv, k.ID); p.Role != "member" {
				t.Errorf("role %q after a change elsewhere, want member", p.Role)
			}
		}},
		{"group change", func(t *testing.T, b *bundle, srv, other *sqlite.DB) {
			k := createKey(t, b, store.NewKey{MemberName: "ada", Role: "member"})
			mustPrincipal(t, b, srv, k.ID)
			if err := other.AddToGroup(b.ctx, b.ws.ID, k.MemberID, "emea"); err != nil {
				t.Fatal(err)
			}
			if p := mustPrincipal(t, b, srv, k.ID); !slices.Equal(p.Groups, []string{"emea"}) {
				t.Errorf("groups %v after a change elsewhere, want [emea]", p.Groups)
			}
		}},
		{"access filter added and deleted", func(t *testing.T, b *bundle, srv, other *sqlite.DB) {
			k := createKey(t, b, store.NewKey{MemberName: "ada", Role: "member"})
			if err := srv.AddToGroup(b.ctx, b.ws.ID, k.MemberID, "emea"); err != nil {
				t.Fatal(err)
			}
			p := mustPrincipal(t, b, srv, k.ID)
			if fs := mustFilters(t, b, srv, p); len(fs) != 0 {
				t.Fatalf("filters before any: %v", fs)
			}
			f, err := other.PutAccessFilter(b.ctx, store.AccessFilter{WorkspaceID: b.ws.ID, Group: "emea",
				Table: "analytics.customers", Column: "region", Operator: "equals", Value: "EMEA"})
			if err != nil {
				t.Fatal(err)
			}
			if fs := mustFilters(t, b, srv, p); len(fs) != 1 || fs[0].ID != f.ID {
				t.Errorf("filters after one was added elsewhere: %v", fs)
			}
			if err := other.DeleteAccessFilter(b.ctx, b.ws.ID, f.ID); err != nil {
				t.Fatal(err)
			}
			if fs := mustFilters(t, b, srv, p); len(fs) != 0 {
				t.Errorf("filters after the filter was deleted elsewhere: %v", fs)
			}
		}},
		{"kill switch", func(t *testing.T, b *bundle, srv, other *sqlite.DB) {
			for _, frozen := range []bool{true, false} {
				if err := other.SetWritesFrozen(b.ctx, b.ws.ID, frozen); err != nil {
					t.Fatal(err)
				}
				if got, err := srv.WritesFrozen(b.ctx, b.ws.ID); err != nil || got != frozen {
					t.Errorf("kill switch %v, %v after setting it to %v elsewhere", got, err, frozen)
				}
			}
		}},
		{"policy set applied and reset", func(t *testing.T, b *bundle, srv, other *sqlite.DB) {
			if _, err := srv.ActivePolicySet(b.ctx, b.ws.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("active policy set before any: %v", err)
			}
			ps := store.PolicySet{Version: "strict-1", Source: "policies: []\n", AppliedBy: "operator"}
			if err := other.ApplyPolicySet(b.ctx, b.ws.ID, ps); err != nil {
				t.Fatal(err)
			}
			if got, err := srv.ActivePolicySet(b.ctx, b.ws.ID); err != nil || got.Version != "strict-1" {
				t.Errorf("active policy set %q, %v after applying strict-1 elsewhere", got.Version, err)
			}
			if err := other.ApplyPolicySet(b.ctx, b.ws.ID, store.PolicySet{AppliedBy: "operator"}); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.ActivePolicySet(b.ctx, b.ws.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("active policy set after a reset elsewhere: %v, want ErrNotFound", err)
			}
		}},
		{"pii classification", func(t *testing.T, b *bundle, srv, other *sqlite.DB) {
			m := mustCreateModel(t, b, srv)
			classify := func(db *sqlite.DB, level string) {
				t.Helper()
				if err := db.SetPIIClasses(b.ctx, b.ws.ID, []store.PIIClass{
					{Column: "analytics.customers.customer_id", Level: level, UpdatedBy: "operator"}}); err != nil {
					t.Fatal(err)
				}
			}
			classify(srv, store.PIINone)
			if got := columnPII(t, b, srv, m.ID, "customer_id"); got != store.PIINone {
				t.Fatalf("customer_id is %q, want none", got)
			}
			classify(other, store.PIIRedacted)
			if got := columnPII(t, b, srv, m.ID, "customer_id"); got != store.PIIRedacted {
				t.Errorf("customer_id is %q after it was classified redacted elsewhere", got)
			}
		}},
		{"model created, updated and deleted", func(t *testing.T, b *bundle, srv, other *sqlite.DB) {
			if _, err := srv.GetModel(b.ctx, b.ws.ID, "customers"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("model before any: %v", err)
			}
			m, err := other.CreateModel(b.ctx, customersModel(b.ws.ID))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := srv.GetModel(b.ctx, b.ws.ID, "customers"); err != nil || got.ID != m.ID {
				t.Fatalf("model created elsewhere: %v %v", got.ID, err)
			}
			m.Description = "Changed elsewhere."
			if _, err := other.UpdateModel(b.ctx, m); err != nil {
				t.Fatal(err)
			}
			if got, err := srv.GetModel(b.ctx, b.ws.ID, m.ID); err != nil || got.Description != m.Description || got.Version != 2 {
				t.Errorf("model updated elsewhere: %q version %d, %v", got.Description, got.Version, err)
			}
			if list, err := srv.ListModels(b.ctx, b.ws.ID); err != nil || len(list) != 1 || list[0].Description != m.Description {
				t.Errorf("list after an update elsewhere: %+v %v", list, err)
			}
			if err := other.DeleteModel(b.ctx, b.ws.ID, m.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.GetModel(b.ctx, b.ws.ID, m.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("model deleted elsewhere: %v, want ErrNotFound", err)
			}
		}},
		{"audience updated and deleted", func(t *testing.T, b *bundle, srv, other *sqlite.DB) {
			m := mustCreateModel(t, b, srv)
			a, err := srv.CreateAudience(b.ctx, store.Audience{WorkspaceID: b.ws.ID, Name: "pros", ModelID: m.ID,
				Definition: []byte(`{"all":[]}`)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.GetAudience(b.ctx, b.ws.ID, a.ID); err != nil {
				t.Fatal(err)
			}
			a.Name = "renamed elsewhere"
			if _, err := other.UpdateAudience(b.ctx, a); err != nil {
				t.Fatal(err)
			}
			if got, err := srv.GetAudience(b.ctx, b.ws.ID, a.ID); err != nil || got.Name != a.Name {
				t.Errorf("audience updated elsewhere: %q %v", got.Name, err)
			}
			if err := other.DeleteAudience(b.ctx, b.ws.ID, a.ID); err != nil {
				t.Fatal(err)
			}
			if list, err := srv.ListAudiences(b.ctx, b.ws.ID); err != nil || len(list) != 0 {
				t.Errorf("audiences after a delete elsewhere: %v %v", list, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			tt.run(t, b, b.db, cli(t, b))
		})
	}
}

// TestCallSeesItsOwnWrite reads, writes and reads again in one call
// scope: the scope's versions are read again after the call's own change,
// so the second read is not served from before it.
func TestCallSeesItsOwnWrite(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := mustCreateModel(t, b, b.db)
	ctx := store.WithCallScope(b.ctx)
	if _, err := b.db.GetModel(ctx, b.ws.ID, m.ID); err != nil {
		t.Fatal(err)
	}
	m.Description = "Changed in this call."
	if _, err := b.db.UpdateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	if got, err := b.db.GetModel(ctx, b.ws.ID, m.ID); err != nil || got.Description != m.Description {
		t.Errorf("read after the call's own update: %q %v", got.Description, err)
	}
}

// TestCachedReadsAreCopies edits what the store returned: the next reader
// gets the stored state, not the edit.
func TestCachedReadsAreCopies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := mustCreateModel(t, b, b.db)
	k := createKey(t, b, store.NewKey{MemberName: "ada", Role: "member"})
	if err := b.db.AddToGroup(b.ctx, b.ws.ID, k.MemberID, "emea"); err != nil {
		t.Fatal(err)
	}
	got, err := b.db.GetModel(b.ctx, b.ws.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Columns[1].PII, got.Relationships[0].Model = store.PIINone, "elsewhere"
	list, err := b.db.ListModels(b.ctx, b.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	list[0].Columns[1].Name = "renamed"
	p := mustPrincipal(t, b, b.db, k.ID)
	p.Groups[0] = "admins"
	again, err := b.db.GetModel(b.ctx, b.ws.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := again.Columns[1]; c.Name != "email" || c.PII == store.PIINone || again.Relationships[0].Model != "orders" {
		t.Errorf("a caller's edit reached the cache: %+v %+v", c, again.Relationships)
	}
	if p := mustPrincipal(t, b, b.db, k.ID); !slices.Equal(p.Groups, []string{"emea"}) {
		t.Errorf("a caller's edit reached the cached principal: %v", p.Groups)
	}
}

// TestCachedPrincipalExpires holds a cached principal to its key's expiry,
// which needs no change in the store.
func TestCachedPrincipalExpires(t *testing.T) {
	t.Parallel()
	b := setup(t)
	exp := time.Now().Add(time.Hour).UTC()
	k := createKey(t, b, store.NewKey{MemberName: "ada", Role: "member", ExpiresAt: &exp})
	mustPrincipal(t, b, b.db, k.ID)
	if _, err := b.db.Principal(b.ctx, k.ID, exp); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("principal at its key's expiry: %v, want ErrNotFound", err)
	}
}

func mustPrincipal(t *testing.T, b *bundle, db *sqlite.DB, keyID string) store.Principal {
	t.Helper()
	p, err := db.Principal(b.ctx, keyID, time.Now())
	if err != nil {
		t.Fatalf("principal: %v", err)
	}
	return p
}

func mustFilters(t *testing.T, b *bundle, db *sqlite.DB, p store.Principal) []store.AccessFilter {
	t.Helper()
	fs, err := db.AccessFiltersFor(b.ctx, p)
	if err != nil {
		t.Fatalf("access filters: %v", err)
	}
	return fs
}

func mustCreateModel(t *testing.T, b *bundle, db *sqlite.DB) store.Model {
	t.Helper()
	m, err := db.CreateModel(b.ctx, customersModel(b.ws.ID))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func columnPII(t *testing.T, b *bundle, db *sqlite.DB, modelID, column string) string {
	t.Helper()
	m, err := db.GetModel(context.Background(), b.ws.ID, modelID)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := m.Column(column)
	if !ok {
		t.Fatalf("model has no column %s", column)
	}
	return c.PII
}
