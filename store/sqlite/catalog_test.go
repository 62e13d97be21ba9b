package sqlite_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

func customersModel(workspaceID string) store.Model {
	return store.Model{
		WorkspaceID: workspaceID,
		Name:        "customers",
		Description: "One row per customer.",
		Table:       "analytics.customers",
		PrimaryKey:  "customer_id",
		Columns: []store.Column{
			{Name: "customer_id", Type: "integer"},
			{Name: "email", Type: "string", Nullable: true, Requested: store.PIIRedacted},
			{Name: "notes", Type: "string", Nullable: true, Requested: store.PIIBlocked},
		},
		Relationships: []store.Relationship{{Name: "orders", Model: "orders", ForeignKey: "customer_id", References: "customer_id"}},
	}
}

// catalog creates one object of each kind in the bundle's first workspace.
type catalog struct {
	model       store.Model
	audience    store.Audience
	destination store.Destination
	sync        store.Sync
}

func createCatalog(t *testing.T, b *bundle, workspaceID string) catalog {
	t.Helper()
	var c catalog
	var err error
	if c.model, err = b.db.CreateModel(b.ctx, customersModel(workspaceID)); err != nil {
		t.Fatalf("create model: %v", err)
	}
	if c.audience, err = b.db.CreateAudience(b.ctx, store.Audience{WorkspaceID: workspaceID, Name: "California pro",
		ModelID: c.model.ID, Definition: []byte(`{"all":[{"column":"state","operator":"equals","value":"CA"}]}`)}); err != nil {
		t.Fatalf("create audience: %v", err)
	}
	if c.destination, err = b.db.CreateDestination(b.ctx, store.Destination{WorkspaceID: workspaceID, Name: "CRM webhook",
		Type: "webhook", Category: "crm", Environment: "production",
		Config: map[string]any{"url": "https://crm.example.com/hook", "batch_size": 500}}); err != nil {
		t.Fatalf("create destination: %v", err)
	}
	if c.sync, err = b.db.CreateSync(b.ctx, store.Sync{WorkspaceID: workspaceID, AudienceID: c.audience.ID,
		DestinationID: c.destination.ID, Mode: "upsert", Schedule: "0 6 * * *",
		Mappings: []store.FieldMapping{{From: "email", To: "email"}}}); err != nil {
		t.Fatalf("create sync: %v", err)
	}
	return c
}

func TestCatalogCreateGetList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)

	for id, prefix := range map[string]string{c.model.ID: "mdl_", c.audience.ID: "aud_", c.destination.ID: "dst_", c.sync.ID: "syn_"} {
		if !strings.HasPrefix(id, prefix) {
			t.Errorf("id %q lacks prefix %q", id, prefix)
		}
	}
	if c.model.CreatedAt.IsZero() || !c.model.UpdatedAt.Equal(c.model.CreatedAt) {
		t.Errorf("model timestamps %v, %v", c.model.CreatedAt, c.model.UpdatedAt)
	}

	for _, key := range []string{c.model.ID, "customers"} {
		got, err := b.db.GetModel(b.ctx, b.ws.ID, key)
		if err != nil {
			t.Fatalf("get model %s: %v", key, err)
		}
		if !reflect.DeepEqual(got, c.model) {
			t.Errorf("get model %s = %+v\nwant %+v", key, got, c.model)
		}
	}
	models, err := b.db.ListModels(b.ctx, b.ws.ID)
	if err != nil || len(models) != 1 || !reflect.DeepEqual(models[0], c.model) {
		t.Errorf("list models = %+v, %v", models, err)
	}

	a, err := b.db.GetAudience(b.ctx, b.ws.ID, c.audience.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != 1 || !reflect.DeepEqual(a, c.audience) {
		t.Errorf("get audience = %+v\nwant %+v at version 1", a, c.audience)
	}
	if n := count(t, b, "audience_versions WHERE audience_id = '"+a.ID+"' AND version = 1"); n != 1 {
		t.Errorf("audience history has %d rows for version 1, want 1", n)
	}
	if as, err := b.db.ListAudiences(b.ctx, b.ws.ID); err != nil || len(as) != 1 || as[0].ID != a.ID {
		t.Errorf("list audiences = %+v, %v", as, err)
	}

	dst, err := b.db.GetDestination(b.ctx, b.ws.ID, c.destination.ID)
	if err != nil {
		t.Fatal(err)
	}
	if dst.HasCredentials || dst.Config["url"] != "https://crm.example.com/hook" || dst.Config["batch_size"] != float64(500) ||
		!reflect.DeepEqual(dst, c.destination) {
		t.Errorf("get destination = %+v\nwant %+v", dst, c.destination)
	}
	if ds, err := b.db.ListDestinations(b.ctx, b.ws.ID); err != nil || len(ds) != 1 {
		t.Errorf("list destinations = %+v, %v", ds, err)
	}

	s, err := b.db.GetSync(b.ctx, b.ws.ID, c.sync.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != "active" || !reflect.DeepEqual(s, c.sync) {
		t.Errorf("get sync = %+v\nwant %+v, active", s, c.sync)
	}
	if ss, err := b.db.ListSyncs(b.ctx, b.ws.ID); err != nil || len(ss) != 1 {
		t.Errorf("list syncs = %+v, %v", ss, err)
	}
}

func TestCatalogIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)

	// The other workspace sees none of it, by id or by name.
	gets := map[string]func() error{
		"model by id":   func() error { _, err := b.db.GetModel(b.ctx, b.other.ID, c.model.ID); return err },
		"model by name": func() error { _, err := b.db.GetModel(b.ctx, b.other.ID, c.model.Name); return err },
		"audience":      func() error { _, err := b.db.GetAudience(b.ctx, b.other.ID, c.audience.ID); return err },
		"destination":   func() error { _, err := b.db.GetDestination(b.ctx, b.other.ID, c.destination.ID); return err },
		"sync":          func() error { _, err := b.db.GetSync(b.ctx, b.other.ID, c.sync.ID); return err },
		"unknown model": func() error { _, err := b.db.GetModel(b.ctx, b.ws.ID, "mdl_nope"); return err },
	}
	for name, get := range gets {
		if err := get(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get %s: %v, want ErrNotFound", name, err)
		}
	}
	ms, _ := b.db.ListModels(b.ctx, b.other.ID)
	as, _ := b.db.ListAudiences(b.ctx, b.other.ID)
	ds, _ := b.db.ListDestinations(b.ctx, b.other.ID)
	ss, _ := b.db.ListSyncs(b.ctx, b.other.ID)
	if len(ms)+len(as)+len(ds)+len(ss) != 0 {
		t.Errorf("other workspace lists %d models, %d audiences, %d destinations, %d syncs; want none",
			len(ms), len(as), len(ds), len(ss))
	}

	// The other workspace cannot point at this one's objects.
	before := counts(t, b)
	_, err := b.db.CreateAudience(b.ctx, store.Audience{WorkspaceID: b.other.ID, Name: "stolen", ModelID: c.model.ID,
		Definition: []byte(`{}`)})
	wantErr(t, err, store.ErrInvalid)
	_, err = b.db.CreateSync(b.ctx, store.Sync{WorkspaceID: b.other.ID, AudienceID: c.audience.ID,
		DestinationID: c.destination.ID, Mode: "upsert"})
	wantErr(t, err, store.ErrInvalid)
	if after := counts(t, b); !reflect.DeepEqual(before, after) {
		t.Errorf("rows changed: %v -> %v", before, after)
	}

	// The same names are free in another workspace, taken in the same one.
	createCatalog(t, b, b.other.ID)
	before = counts(t, b)
	_, err = b.db.CreateModel(b.ctx, customersModel(b.ws.ID))
	wantErr(t, err, store.ErrConflict)
	_, err = b.db.CreateAudience(b.ctx, store.Audience{WorkspaceID: b.ws.ID, Name: c.audience.Name, ModelID: c.model.ID,
		Definition: []byte(`{}`)})
	wantErr(t, err, store.ErrConflict)
	_, err = b.db.CreateDestination(b.ctx, store.Destination{WorkspaceID: b.ws.ID, Name: c.destination.Name,
		Type: "file", Category: "other", Environment: "sandbox"})
	wantErr(t, err, store.ErrConflict)
	dupID := c.sync
	_, err = b.db.CreateSync(b.ctx, dupID)
	wantErr(t, err, store.ErrConflict)
	if after := counts(t, b); !reflect.DeepEqual(before, after) {
		t.Errorf("rows changed: %v -> %v", before, after)
	}
}

func TestCatalogRejectsInvalid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	ws := b.ws.ID

	model := func(edit func(*store.Model)) func() error {
		return func() error {
			m := customersModel(ws)
			m.Name = "other"
			edit(&m)
			_, err := b.db.CreateModel(b.ctx, m)
			return err
		}
	}
	audience := func(edit func(*store.Audience)) func() error {
		return func() error {
			a := store.Audience{WorkspaceID: ws, Name: "other", ModelID: c.model.ID, Definition: []byte(`{"all":[]}`)}
			edit(&a)
			_, err := b.db.CreateAudience(b.ctx, a)
			return err
		}
	}
	destination := func(edit func(*store.Destination)) func() error {
		return func() error {
			d := store.Destination{WorkspaceID: ws, Name: "other", Type: "file", Category: "other", Environment: "sandbox"}
			edit(&d)
			_, err := b.db.CreateDestination(b.ctx, d)
			return err
		}
	}
	sync := func(edit func(*store.Sync)) func() error {
		return func() error {
			s := store.Sync{WorkspaceID: ws, AudienceID: c.audience.ID, DestinationID: c.destination.ID, Mode: "mirror"}
			edit(&s)
			_, err := b.db.CreateSync(b.ctx, s)
			return err
		}
	}

	tests := []struct {
		name  string
		field string // the message must name it
		do    func() error
	}{
		{"model without name", "name", model(func(m *store.Model) { m.Name = "" })},
		{"model name with control character", "name", model(func(m *store.Model) { m.Name = "a\nb" })},
		{"model without table or sql", "table", model(func(m *store.Model) { m.Table = "" })},
		{"model with table and sql", "table", model(func(m *store.Model) { m.SQL = "select 1" })},
		{"model without primary key", "primary_key", model(func(m *store.Model) { m.PrimaryKey = "" })},
		{"model primary key not a column", "primary_key", model(func(m *store.Model) { m.PrimaryKey = "id" })},
		{"model without columns", "columns", model(func(m *store.Model) { m.Columns = nil })},
		{"model duplicate column", "columns", model(func(m *store.Model) { m.Columns = append(m.Columns, m.Columns[0]) })},
		{"model unknown pii level", "columns", model(func(m *store.Model) { m.Columns[1].Requested = "secret" })},
		{"model incomplete relationship", "relationships", model(func(m *store.Model) { m.Relationships[0].Model = "" })},
		{"model without workspace", "workspace_id", model(func(m *store.Model) { m.WorkspaceID = "" })},
		{"audience without name", "name", audience(func(a *store.Audience) { a.Name = "" })},
		{"audience without model", "model_id", audience(func(a *store.Audience) { a.ModelID = "" })},
		{"audience unknown model", "model_id", audience(func(a *store.Audience) { a.ModelID = "mdl_nope" })},
		{"audience without definition", "definition", audience(func(a *store.Audience) { a.Definition = nil })},
		{"audience definition not json", "definition", audience(func(a *store.Audience) { a.Definition = []byte(`{"all":`) })},
		{"destination without name", "name", destination(func(d *store.Destination) { d.Name = "" })},
		{"destination without type", "type", destination(func(d *store.Destination) { d.Type = "" })},
		{"destination bad type", "type", destination(func(d *store.Destination) { d.Type = "Web Hook" })},
		{"destination unknown category", "category", destination(func(d *store.Destination) { d.Category = "social" })},
		{"destination unknown environment", "environment", destination(func(d *store.Destination) { d.Environment = "staging" })},
		{"destination config not json", "config", destination(func(d *store.Destination) { d.Config = map[string]any{"f": func() {}} })},
		{"sync unknown mode", "mode", sync(func(s *store.Sync) { s.Mode = "replace" })},
		{"sync without mode", "mode", sync(func(s *store.Sync) { s.Mode = "" })},
		{"sync unknown state", "state", sync(func(s *store.Sync) { s.State = "running" })},
		{"sync unknown audience", "audience_id", sync(func(s *store.Sync) { s.AudienceID = "aud_nope" })},
		{"sync unknown destination", "destination_id", sync(func(s *store.Sync) { s.DestinationID = "dst_nope" })},
		{"sync incomplete mapping", "mappings", sync(func(s *store.Sync) { s.Mappings = []store.FieldMapping{{From: "email"}} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counts(t, b)
			err := tt.do()
			wantErr(t, err, store.ErrInvalid)
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
			if after := counts(t, b); !reflect.DeepEqual(before, after) {
				t.Errorf("rows changed: %v -> %v", before, after)
			}
		})
	}
}

func TestCreateModelFromSQL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := customersModel(b.ws.ID)
	m.Name, m.Table, m.SQL, m.Relationships = "recent buyers", "", "select customer_id, email, notes from analytics.orders", nil
	m.ID = "mdl_chosen"
	got, err := b.db.CreateModel(b.ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "mdl_chosen" {
		t.Errorf("id = %q, want the given id kept", got.ID)
	}
	read, err := b.db.GetModel(b.ctx, b.ws.ID, "recent buyers")
	if err != nil {
		t.Fatal(err)
	}
	if read.SQL != m.SQL || read.Table != "" || read.Relationships != nil {
		t.Errorf("read model = %+v", read)
	}
	js, _ := json.Marshal(read)
	if strings.Contains(string(js), `"relationships"`) {
		t.Errorf("model without relationships encodes them: %s", js)
	}
}

func TestCatalogNamesNeverPoseAsIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := createCatalog(t, b, b.ws.ID)
	// A name that looks like an id is refused for every named object.
	for _, name := range []string{c.model.ID, "MDL_x", "aud_x", "dst_x", "syn_x", "apr_x"} {
		m := customersModel(b.ws.ID)
		m.Name = name
		_, err := b.db.CreateModel(b.ctx, m)
		wantErr(t, err, store.ErrInvalid)
		renamed := c.model
		renamed.Name = name
		_, err = b.db.UpdateModel(b.ctx, renamed)
		wantErr(t, err, store.ErrInvalid)
		_, err = b.db.CreateAudience(b.ctx, store.Audience{WorkspaceID: b.ws.ID, Name: name, ModelID: c.model.ID, Definition: []byte(`{}`)})
		wantErr(t, err, store.ErrInvalid)
		a := c.audience
		a.Name = name
		_, err = b.db.UpdateAudience(b.ctx, a)
		wantErr(t, err, store.ErrInvalid)
		_, err = b.db.CreateDestination(b.ctx, store.Destination{WorkspaceID: b.ws.ID, Name: name, Type: "file", Category: "other", Environment: "sandbox"})
		wantErr(t, err, store.ErrInvalid)
	}
	// A reference in the id form is looked up by id only, a name by name
	// only.
	if m, err := b.db.GetModel(b.ctx, b.ws.ID, c.model.ID); err != nil || m.ID != c.model.ID {
		t.Errorf("GetModel(id) = %+v, %v", m, err)
	}
	if m, err := b.db.GetModel(b.ctx, b.ws.ID, c.model.Name); err != nil || m.ID != c.model.ID {
		t.Errorf("GetModel(name) = %+v, %v", m, err)
	}
	_, err := b.db.GetModel(b.ctx, b.ws.ID, "mdl_"+c.model.Name)
	wantErr(t, err, store.ErrNotFound)
}
