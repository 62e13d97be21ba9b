package demo

import (
	"context"
	"testing"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// TestGenerateWritesTheEmbeddedWarehouse opens what Generate wrote as the
// embedded warehouse does: the file is where the warehouse attaches it,
// and its tables, with their row counts, are what the warehouse lists.
func TestGenerateWritesTheEmbeddedWarehouse(t *testing.T) {
	t.Parallel()
	if analyticsFile != sqlite.AnalyticsFile {
		t.Fatalf("the demo writes %s, the warehouse attaches %s", analyticsFile, sqlite.AnalyticsFile)
	}
	dir := generateDemo(t, Options{Scale: 20, Now: demoNow})
	ctx := context.Background()
	wh, err := sqlite.OpenWarehouse(ctx, dir, sqlite.WarehouseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close() })
	tables, err := wh.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.Table{}
	for _, tb := range tables {
		got[tb.Name] = tb
	}
	for _, name := range []string{"customers", "orders", "events"} {
		if _, ok := got[name]; !ok {
			t.Errorf("the warehouse lists no %s table: %+v", name, tables)
		}
	}
	if c := got["customers"]; c.RowCount == nil || *c.RowCount != 20 {
		t.Errorf("customers: %+v, want 20 rows", c)
	}
}
