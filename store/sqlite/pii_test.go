package sqlite_test

import (
	"errors"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// TestModelLevelsComeFromTheClassification checks that a model column's
// level is what people classified its source column as, whatever the
// model's definition asked for, and that a definition can only make it
// stricter.
func TestModelLevelsComeFromTheClassification(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := customersModel(b.ws.ID)
	m.Relationships = nil
	m.Columns[1].Requested = store.PIINone // the definition asks to show email
	m.Columns = append(m.Columns, store.Column{Name: "city", Type: "string", Requested: store.PIISyncOnly})
	created, err := b.db.CreateModel(b.ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing classified yet: every column is blocked, whatever it asks.
	for _, c := range created.Columns {
		if c.PII != store.PIIBlocked {
			t.Errorf("unclassified %s = %q, want blocked", c.Name, c.PII)
		}
	}
	err = b.db.SetPIIClasses(b.ctx, b.ws.ID, []store.PIIClass{
		{Column: "analytics.customers.customer_id", Level: store.PIINone, UpdatedBy: "cli"},
		{Column: "Analytics.Customers.Email", Level: store.PIIRedacted, UpdatedBy: "cli"},
		{Column: "analytics.customers.notes", Level: store.PIIBlocked, UpdatedBy: "cli"},
		{Column: "analytics.customers.city", Level: store.PIINone, UpdatedBy: "cli"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.db.GetModel(b.ctx, b.ws.ID, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"customer_id": store.PIINone, "email": store.PIIRedacted, "notes": store.PIIBlocked, "city": store.PIISyncOnly}
	for _, c := range got.Columns {
		if c.PII != want[c.Name] {
			t.Errorf("%s = %q (requested %q), want %q", c.Name, c.PII, c.Requested, want[c.Name])
		}
	}
	list, err := b.db.ListModels(b.ctx, b.ws.ID)
	if err != nil || len(list) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}
	if c, _ := list[0].Column("email"); c.PII != store.PIIRedacted {
		t.Errorf("listed email = %q, want redacted", c.PII)
	}

	// A SQL model's column takes the levels of its recorded sources; one
	// with no recorded lineage is blocked.
	sqlModel := store.Model{WorkspaceID: b.ws.ID, Name: "emails", SQL: "SELECT customer_id, lower(email) AS e FROM customers", PrimaryKey: "customer_id",
		Columns: []store.Column{
			{Name: "customer_id", Type: "integer", Lineage: store.LineageColumn, Sources: []string{"analytics.customers.customer_id"}},
			{Name: "e", Type: "string", Requested: store.PIINone, Lineage: store.LineageExpression,
				Sources: []string{"analytics.customers.customer_id", "analytics.customers.email"}},
			{Name: "legacy", Type: "string"},
		}}
	sm, err := b.db.CreateModel(b.ctx, sqlModel)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"customer_id": store.PIINone, "e": store.PIIRedacted, "legacy": store.PIIBlocked}
	for _, c := range sm.Columns {
		if c.PII != want[c.Name] {
			t.Errorf("sql model %s = %q, want %q", c.Name, c.PII, want[c.Name])
		}
	}
}

// TestSetPIIClassesRefusesBadInput checks that a bad classification is
// refused whole: nothing of the batch is written.
func TestSetPIIClassesRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good := store.PIIClass{Column: "analytics.customers.email", Level: store.PIINone, UpdatedBy: "cli"}
	for _, tt := range []struct {
		name string
		bad  store.PIIClass
	}{
		{"two parts", store.PIIClass{Column: "customers.email", Level: store.PIINone, UpdatedBy: "cli"}},
		{"empty part", store.PIIClass{Column: "analytics..email", Level: store.PIINone, UpdatedBy: "cli"}},
		{"unknown level", store.PIIClass{Column: "analytics.customers.notes", Level: "public", UpdatedBy: "cli"}},
		{"empty level", store.PIIClass{Column: "analytics.customers.notes", UpdatedBy: "cli"}},
		{"no updater", store.PIIClass{Column: "analytics.customers.notes", Level: store.PIINone}},
	} {
		err := b.db.SetPIIClasses(b.ctx, b.ws.ID, []store.PIIClass{good, tt.bad})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: error = %v, want invalid input", tt.name, err)
		}
	}
	if err := b.db.SetPIIClasses(b.ctx, "ws_unknown", []store.PIIClass{good}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown workspace: error = %v, want not found", err)
	}
	got, err := b.db.PIIClasses(b.ctx, b.ws.ID)
	if err != nil || len(got) != 0 {
		t.Errorf("classes after refused batches = %v, %v; want none", got, err)
	}
}
