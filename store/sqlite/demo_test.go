package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store/demo"
)

// demoNow is a fixed generation time, so tests do not depend on the clock.
var demoNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// generateDemo writes a demo warehouse into a fresh directory.
func generateDemo(t testing.TB, opts demo.Options) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "warehouse")
	if err := demo.Generate(context.Background(), dir, opts); err != nil {
		t.Fatalf("demo.Generate: %v", err)
	}
	return dir
}
