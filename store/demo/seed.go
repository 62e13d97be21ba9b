package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// Seeder is what SeedMetadata needs of a store: the catalog it fills and
// the PII classification the models inherit.
type Seeder interface {
	store.Catalog
	store.PIIClassification
}

// SeedMetadata creates the demo workspace's models, audiences,
// destinations and sync (DESIGN.md section 9) over the demo warehouse. It is
// idempotent: objects that exist by name are left as they are, so a run
// interrupted half-way is completed by the next.
func SeedMetadata(ctx context.Context, s Seeder, workspaceID string) error {
	if err := seedDemoClassification(ctx, s, workspaceID); err != nil {
		return err
	}
	models := make(map[string]store.Model)
	for _, m := range demoModels() {
		m.WorkspaceID = workspaceID
		for i := range m.Columns {
			// The levels are the classification's: the models request none
			// of their own, so a person's reclassification applies to them.
			m.Columns[i].Requested = ""
		}
		got, err := s.GetModel(ctx, workspaceID, m.Name)
		if errors.Is(err, store.ErrNotFound) {
			got, err = s.CreateModel(ctx, m)
		}
		if err != nil {
			return fmt.Errorf("seed model %s: %w", m.Name, err)
		}
		models[m.Name] = got
	}

	audiences := make(map[string]store.Audience)
	existing, err := s.ListAudiences(ctx, workspaceID)
	if err != nil {
		return fmt.Errorf("seed audiences: %w", err)
	}
	for _, a := range existing {
		audiences[a.Name] = a
	}
	for _, a := range demoAudiences() {
		if _, ok := audiences[a.Name]; ok {
			continue
		}
		a.WorkspaceID, a.ModelID = workspaceID, models["customers"].ID
		got, err := s.CreateAudience(ctx, a)
		if err != nil {
			return fmt.Errorf("seed audience %s: %w", a.Name, err)
		}
		audiences[a.Name] = got
	}

	destinations := make(map[string]store.Destination)
	existingDst, err := s.ListDestinations(ctx, workspaceID)
	if err != nil {
		return fmt.Errorf("seed destinations: %w", err)
	}
	for _, d := range existingDst {
		destinations[d.Name] = d
	}
	for _, d := range demoDestinations() {
		if _, ok := destinations[d.Name]; ok {
			continue
		}
		d.WorkspaceID = workspaceID
		got, err := s.CreateDestination(ctx, d)
		if err != nil {
			return fmt.Errorf("seed destination %s: %w", d.Name, err)
		}
		destinations[d.Name] = got
	}

	syncs, err := s.ListSyncs(ctx, workspaceID)
	if err != nil {
		return fmt.Errorf("seed sync: %w", err)
	}
	if len(syncs) > 0 {
		return nil
	}
	_, err = s.CreateSync(ctx, store.Sync{
		WorkspaceID:   workspaceID,
		AudienceID:    audiences["California pro customers"].ID,
		DestinationID: destinations["Sandbox file export"].ID,
		Mode:          "upsert",
		Schedule:      "0 6 * * *",
		State:         "active",
		Mappings: []store.FieldMapping{
			{From: "customer_id", To: "external_id"},
			{From: "email", To: "email"},
			{From: "first_name", To: "first_name"},
			{From: "plan", To: "plan"},
		},
	})
	if err != nil {
		return fmt.Errorf("seed sync: %w", err)
	}
	return nil
}

// seedDemoClassification classifies every column of the demo tables that
// is not classified yet, with the levels of demoModels: names, email and
// phone redacted, birth date sync-only, notes blocked, the rest none.
func seedDemoClassification(ctx context.Context, s store.PIIClassification, workspaceID string) error {
	have, err := s.PIIClasses(ctx, workspaceID)
	if err != nil {
		return fmt.Errorf("seed pii classes: %w", err)
	}
	known := make(map[string]bool, len(have))
	for _, c := range have {
		known[c.Column] = true
	}
	var missing []store.PIIClass
	for _, m := range demoModels() {
		for _, c := range m.Columns {
			ref := strings.ToLower(m.Table + "." + c.Name)
			if !known[ref] {
				missing = append(missing, store.PIIClass{Column: ref, Level: c.Requested, UpdatedBy: "demo"})
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := s.SetPIIClasses(ctx, workspaceID, missing); err != nil {
		return fmt.Errorf("seed pii classes: %w", err)
	}
	return nil
}

// demoModels are the models over the demo tables, with PII levels: names,
// email and phone redacted; birth date sync-only; notes blocked.
func demoModels() []store.Model {
	col := func(name, typ, pii string, nullable bool) store.Column {
		return store.Column{Name: name, Type: typ, Requested: pii, Nullable: nullable}
	}
	return []store.Model{
		{
			Name:        "customers",
			Description: "One row per customer, with contact details, location, plan and lifetime value.",
			Table:       "analytics.customers",
			PrimaryKey:  "customer_id",
			Columns: []store.Column{
				col("customer_id", "integer", store.PIINone, false),
				col("email", "string", store.PIIRedacted, true),
				col("phone", "string", store.PIIRedacted, true),
				col("first_name", "string", store.PIIRedacted, false),
				col("last_name", "string", store.PIIRedacted, false),
				col("birth_date", "date", store.PIISyncOnly, true),
				col("city", "string", store.PIINone, true),
				col("state", "string", store.PIINone, true),
				col("country", "string", store.PIINone, true),
				col("region", "string", store.PIINone, true),
				col("signup_at", "timestamp", store.PIINone, true),
				col("plan", "string", store.PIINone, true),
				col("lifetime_value", "number", store.PIINone, true),
				col("marketing_consent", "boolean", store.PIINone, true),
				col("notes", "string", store.PIIBlocked, true),
			},
			Relationships: []store.Relationship{
				{Name: "orders", Model: "orders", ForeignKey: "customer_id", References: "customer_id"},
				{Name: "events", Model: "events", ForeignKey: "customer_id", References: "customer_id"},
			},
		},
		{
			Name:        "orders",
			Description: "One row per order: when, how much, through which channel, in which category.",
			Table:       "analytics.orders",
			PrimaryKey:  "order_id",
			Columns: []store.Column{
				col("order_id", "integer", store.PIINone, false),
				col("customer_id", "integer", store.PIINone, false),
				col("ordered_at", "timestamp", store.PIINone, true),
				col("amount", "number", store.PIINone, true),
				col("currency", "string", store.PIINone, true),
				col("channel", "string", store.PIINone, true),
				col("category", "string", store.PIINone, true),
			},
			Relationships: []store.Relationship{
				{Name: "customer", Model: "customers", ForeignKey: "customer_id", References: "customer_id"},
			},
		},
		{
			Name:        "events",
			Description: "Behavioural events: page views, carts, checkouts, email and app opens.",
			Table:       "analytics.events",
			PrimaryKey:  "event_id",
			Columns: []store.Column{
				col("event_id", "integer", store.PIINone, false),
				col("customer_id", "integer", store.PIINone, false),
				col("occurred_at", "timestamp", store.PIINone, true),
				col("event_type", "string", store.PIINone, true),
				col("properties", "json", store.PIINone, true),
			},
			Relationships: []store.Relationship{
				{Name: "customer", Model: "customers", ForeignKey: "customer_id", References: "customer_id"},
			},
		},
	}
}

// demoAudiences are a few saved audiences over the customers model, in the
// definition format of package audience: the parent model and the
// conditions its rows meet.
func demoAudiences() []store.Audience {
	def := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return b
	}
	all := func(conds ...any) map[string]any {
		return map[string]any{"model": "customers", "conditions": map[string]any{"all": conds}}
	}
	cond := func(column, op string, value any) map[string]any {
		c := map[string]any{"column": column, "operator": op}
		if value != nil {
			c["value"] = value
		}
		return c
	}
	return []store.Audience{
		{
			Name:        "California pro customers",
			Description: "Customers in California on the pro plan.",
			Definition:  def(all(cond("state", "equals", "CA"), cond("plan", "equals", "pro"))),
		},
		{
			Name:        "High-value EMEA customers",
			Description: "EMEA customers with a lifetime value of at least 1,000.",
			Definition:  def(all(cond("region", "equals", "EMEA"), cond("lifetime_value", "greater_or_equal", 1000))),
		},
		{
			Name:        "Marketing-consented with email",
			Description: "Customers who consented to marketing and have an email address.",
			Definition:  def(all(cond("marketing_consent", "is_true", nil), cond("email", "is_not_null", nil))),
		},
	}
}

// demoDestinations are one production webhook and one sandbox file export.
func demoDestinations() []store.Destination {
	return []store.Destination{
		{
			Name:        "CRM webhook",
			Type:        "webhook",
			Category:    "crm",
			Environment: "production",
			Config:      map[string]any{"url": "https://crm.example.com/hooks/signalsmith", "batch_size": 500},
		},
		{
			Name:        "Sandbox file export",
			Type:        "file",
			Category:    "analytics",
			Environment: "sandbox",
			Config:      map[string]any{"dir": "exports/sandbox", "format": "jsonl", "batch_size": 500},
		},
	}
}
