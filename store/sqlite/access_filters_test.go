package sqlite_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

func TestAccessFilterStore(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ada := createKey(t, b, store.NewKey{MemberName: "ada", Role: "member"})
	bob := createKey(t, b, store.NewKey{MemberName: "bob", Role: "member"})
	if err := b.db.AddToGroup(b.ctx, b.ws.ID, ada.MemberID, "emea"); err != nil {
		t.Fatal(err)
	}

	v0 := version(t, b)
	emea, err := b.db.PutAccessFilter(b.ctx, store.AccessFilter{WorkspaceID: b.ws.ID, Group: "emea",
		Table: "analytics.customers", Column: "region", Operator: store.FilterEquals, Value: "EMEA"})
	if err != nil {
		t.Fatal(err)
	}
	if emea.ID == "" || emea.CreatedAt.IsZero() {
		t.Errorf("filter = %+v, want an id and a creation time", emea)
	}
	// A group that does not exist yet is created, as AddToGroup does.
	pro, err := b.db.PutAccessFilter(b.ctx, store.AccessFilter{WorkspaceID: b.ws.ID, Group: "pro-only",
		Table: "analytics.customers", Column: "plan", Operator: store.FilterIn, Value: []any{"pro", 2.0, true}})
	if err != nil {
		t.Fatal(err)
	}
	if v := version(t, b); v != v0+2 {
		t.Errorf("rbac_version %d -> %d, want a bump per filter", v0, v)
	}

	list, err := b.db.ListAccessFilters(b.ctx, b.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != emea.ID || list[1].ID != pro.ID {
		t.Fatalf("list = %+v", list)
	}
	if !reflect.DeepEqual(list[1].Value, []any{"pro", int64(2), true}) || list[0].Value != "EMEA" {
		t.Errorf("values read back as %#v and %#v", list[0].Value, list[1].Value)
	}

	// Filters of the principal's groups, and of the groups it is in now.
	p, err := b.db.Principal(b.ctx, ada.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.db.AccessFiltersFor(b.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != emea.ID {
		t.Errorf("ada's filters = %+v, want the emea filter", got)
	}
	pb, err := b.db.Principal(b.ctx, bob.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.db.AccessFiltersFor(b.ctx, pb); err != nil || len(got) != 0 || got == nil {
		t.Errorf("bob's filters = %#v, %v; want none, as an empty list", got, err)
	}
	if err := b.db.AddToGroup(b.ctx, b.ws.ID, bob.MemberID, "pro-only"); err != nil {
		t.Fatal(err)
	}
	// pb was read before bob joined: the store still answers with the
	// membership of now.
	if got, err := b.db.AccessFiltersFor(b.ctx, pb); err != nil || len(got) != 1 || got[0].ID != pro.ID {
		t.Errorf("bob's filters after joining = %+v, %v", got, err)
	}
	// A stale principal that still names a group keeps its filters.
	stale := p
	stale.Groups = []string{"emea", "pro-only"}
	if got, err := b.db.AccessFiltersFor(b.ctx, stale); err != nil || len(got) != 2 {
		t.Errorf("filters of a principal naming two groups = %+v, %v", got, err)
	}
	// Another workspace's member never gets this workspace's filters.
	other := p
	other.WorkspaceID = b.other.ID
	if got, err := b.db.AccessFiltersFor(b.ctx, other); err != nil || len(got) != 0 {
		t.Errorf("filters in another workspace = %+v, %v", got, err)
	}

	// Replace by id.
	v1 := version(t, b)
	emea.Value = "APAC"
	replaced, err := b.db.PutAccessFilter(b.ctx, emea)
	if err != nil {
		t.Fatal(err)
	}
	if replaced.Value != "APAC" || !replaced.CreatedAt.Equal(emea.CreatedAt) || version(t, b) != v1+1 {
		t.Errorf("replaced = %+v", replaced)
	}
	missing := emea
	missing.ID = "flt_nope"
	_, err = b.db.PutAccessFilter(b.ctx, missing)
	wantErr(t, err, store.ErrNotFound)

	v2 := version(t, b)
	if err := b.db.DeleteAccessFilter(b.ctx, b.ws.ID, emea.ID); err != nil {
		t.Fatal(err)
	}
	if version(t, b) != v2+1 {
		t.Error("deleting a filter did not bump rbac_version")
	}
	wantErr(t, b.db.DeleteAccessFilter(b.ctx, b.ws.ID, emea.ID), store.ErrNotFound)
	wantErr(t, b.db.DeleteAccessFilter(b.ctx, b.other.ID, pro.ID), store.ErrNotFound)
}

func TestAccessFilterStoreRejects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good := store.AccessFilter{WorkspaceID: b.ws.ID, Group: "emea", Table: "analytics.customers",
		Column: "region", Operator: store.FilterEquals, Value: "EMEA"}
	tests := []struct {
		name string
		mod  func(*store.AccessFilter)
		want error
	}{
		{"no workspace", func(f *store.AccessFilter) { f.WorkspaceID = "" }, store.ErrInvalid},
		{"unknown workspace", func(f *store.AccessFilter) { f.WorkspaceID = "ws_nope" }, store.ErrNotFound},
		{"no group", func(f *store.AccessFilter) { f.Group = "" }, store.ErrInvalid},
		{"no column", func(f *store.AccessFilter) { f.Column = "" }, store.ErrInvalid},
		{"table without schema", func(f *store.AccessFilter) { f.Table = "customers" }, store.ErrInvalid},
		{"another schema", func(f *store.AccessFilter) { f.Table = "cdp_audit.audit_events" }, store.ErrInvalid},
		{"raw SQL as operator", func(f *store.AccessFilter) { f.Operator = "1=1 OR" }, store.ErrInvalid},
		{"null value", func(f *store.AccessFilter) { f.Value = nil }, store.ErrInvalid},
		{"object value", func(f *store.AccessFilter) { f.Value = map[string]any{"a": 1} }, store.ErrInvalid},
		{"list for equals", func(f *store.AccessFilter) { f.Value = []any{"EMEA"} }, store.ErrInvalid},
		{"scalar for in", func(f *store.AccessFilter) { f.Operator, f.Value = store.FilterIn, "EMEA" }, store.ErrInvalid},
		{"empty list", func(f *store.AccessFilter) { f.Operator, f.Value = store.FilterNotIn, []any{} }, store.ErrInvalid},
		{"null in a list", func(f *store.AccessFilter) { f.Operator, f.Value = store.FilterIn, []any{"EMEA", nil} }, store.ErrInvalid},
	}
	before := counts(t, b)
	v := version(t, b)
	for _, tt := range tests {
		f := good
		tt.mod(&f)
		_, err := b.db.PutAccessFilter(b.ctx, f)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if after := counts(t, b); !reflect.DeepEqual(after, before) || count(t, b, "access_filters") != 0 || version(t, b) != v {
		t.Errorf("rejected filters changed the store: %v -> %v", before, after)
	}
}

func TestUpdateModel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	orders, err := b.db.CreateModel(b.ctx, store.Model{WorkspaceID: b.ws.ID, Name: "orders", Table: "analytics.orders",
		PrimaryKey: "order_id", Columns: []store.Column{{Name: "order_id", Type: "integer"}, {Name: "customer_id", Type: "integer"}},
		Relationships: []store.Relationship{{Name: "customer", Model: "customers", ForeignKey: "customer_id", References: "customer_id"}}})
	if err != nil {
		t.Fatal(err)
	}

	m := c.model
	m.Description = "Customers, again."
	m.Columns = append(m.Columns, store.Column{Name: "plan", Type: "string", PII: store.PIINone})
	updated, err := b.db.UpdateModel(b.ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if !updated.CreatedAt.Equal(c.model.CreatedAt) || !updated.UpdatedAt.After(c.model.UpdatedAt) {
		t.Errorf("times: created %v -> %v, updated %v -> %v", c.model.CreatedAt, updated.CreatedAt, c.model.UpdatedAt, updated.UpdatedAt)
	}
	got, err := b.db.GetModel(b.ctx, b.ws.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != m.Description || len(got.Columns) != 4 || !got.UpdatedAt.Equal(updated.UpdatedAt) {
		t.Errorf("stored = %+v", got)
	}

	// A new source while a sync sends an audience over the model is
	// refused, naming both.
	m.Table, m.SQL = "", "SELECT customer_id, email, notes, plan FROM customers"
	_, err = b.db.UpdateModel(b.ctx, m)
	var inUse *store.InUseError
	if !errors.As(err, &inUse) || len(inUse.Dependents) != 2 || inUse.Dependents[0].ID != c.audience.ID || inUse.Dependents[1].ID != c.sync.ID {
		t.Errorf("new source under a synced audience: err = %v", err)
	}
	if got, _ := b.db.GetModel(b.ctx, b.ws.ID, m.ID); got.Table != c.model.Table || got.SQL != "" {
		t.Errorf("the refused source change was stored: %+v", got)
	}

	// From a table to SQL, and back: exactly one of them.
	m = orders
	m.Table, m.SQL = "", "SELECT order_id, customer_id FROM orders"
	if _, err := b.db.UpdateModel(b.ctx, m); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.db.GetModel(b.ctx, b.ws.ID, m.ID); got.Table != "" || got.SQL != m.SQL {
		t.Errorf("after switching to SQL: %+v", got)
	}
	m = c.model
	m.Columns = append(m.Columns, store.Column{Name: "plan", Type: "string", PII: store.PIINone})

	// What would break orders' relationship is refused, naming orders.
	renamed := m
	renamed.Name = "clients"
	_, err = b.db.UpdateModel(b.ctx, renamed)
	if !errors.As(err, &inUse) || !errors.Is(err, store.ErrConflict) || len(inUse.Dependents) != 1 || inUse.Dependents[0].ID != orders.ID {
		t.Errorf("rename of a referenced model: err = %v", err)
	}
	dropped := m
	dropped.Columns = dropped.Columns[1:]
	dropped.PrimaryKey = "email"
	_, err = b.db.UpdateModel(b.ctx, dropped)
	if !errors.As(err, &inUse) {
		t.Errorf("dropping a referenced column: err = %v", err)
	}

	other := createCatalog(t, b, b.other.ID)
	other.model.Name = "orders"
	_, err = b.db.UpdateModel(b.ctx, store.Model{ID: m.ID, WorkspaceID: b.ws.ID, Name: "orders", Table: "analytics.x",
		PrimaryKey: "id", Columns: []store.Column{{Name: "id"}}})
	wantErr(t, err, store.ErrConflict)
	_, err = b.db.UpdateModel(b.ctx, store.Model{ID: other.model.ID, WorkspaceID: b.ws.ID, Name: "x", Table: "analytics.x",
		PrimaryKey: "id", Columns: []store.Column{{Name: "id"}}})
	wantErr(t, err, store.ErrNotFound)
	bad := m
	bad.PrimaryKey = "nope"
	_, err = b.db.UpdateModel(b.ctx, bad)
	wantErr(t, err, store.ErrInvalid)
	if got, _ := b.db.GetModel(b.ctx, b.ws.ID, m.ID); got.Name != "customers" || got.PrimaryKey != "customer_id" {
		t.Errorf("refused updates changed the model: %+v", got)
	}
}

func TestDeleteModel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	orders, err := b.db.CreateModel(b.ctx, store.Model{WorkspaceID: b.ws.ID, Name: "orders", Table: "analytics.orders",
		PrimaryKey: "order_id", Columns: []store.Column{{Name: "order_id"}, {Name: "customer_id"}},
		Relationships: []store.Relationship{{Name: "customer", Model: c.model.ID, ForeignKey: "customer_id", References: "customer_id"}}})
	if err != nil {
		t.Fatal(err)
	}

	before := counts(t, b)
	err = b.db.DeleteModel(b.ctx, b.ws.ID, c.model.ID)
	var inUse *store.InUseError
	if !errors.As(err, &inUse) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete of a model in use: err = %v", err)
	}
	kinds := map[string]string{}
	for _, d := range inUse.Dependents {
		kinds[d.Type] = d.ID
	}
	want := map[string]string{"audience": c.audience.ID, "sync": c.sync.ID, "model": orders.ID}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("dependents = %+v, want %v", inUse.Dependents, want)
	}
	if after := counts(t, b); !reflect.DeepEqual(after, before) {
		t.Errorf("a refused delete changed the store: %v -> %v", before, after)
	}

	// customers' own relationship leads to orders.
	if err := b.db.DeleteModel(b.ctx, b.ws.ID, orders.ID); !errors.As(err, &inUse) || inUse.Dependents[0].ID != c.model.ID {
		t.Errorf("delete of orders: err = %v, want customers named", err)
	}

	scratch, err := b.db.CreateModel(b.ctx, store.Model{WorkspaceID: b.ws.ID, Name: "scratch", SQL: "SELECT 1 AS id",
		PrimaryKey: "id", Columns: []store.Column{{Name: "id"}}})
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.db.DeleteModel(b.ctx, b.other.ID, scratch.ID), store.ErrNotFound)
	if err := b.db.DeleteModel(b.ctx, b.ws.ID, scratch.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.db.DeleteModel(b.ctx, b.ws.ID, scratch.ID), store.ErrNotFound)
	if _, err := b.db.GetModel(b.ctx, b.ws.ID, scratch.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted model still readable: %v", err)
	}
}
