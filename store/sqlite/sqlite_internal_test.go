package sqlite

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

func TestReadPoolRefusesWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	writes := []string{
		`INSERT INTO workspaces (id, name, created_at) VALUES ('ws_x', 'x', '2026-01-01 00:00:00+00:00')`,
		`UPDATE rbac_version SET version = 99`,
		`CREATE TABLE t (x)`,
		`PRAGMA query_only = 0; INSERT INTO workspaces (id, name, created_at) VALUES ('ws_y', 'y', '2026-01-01 00:00:00+00:00')`,
	}
	for _, q := range writes {
		if _, err := d.read.ExecContext(ctx, q); err == nil {
			t.Errorf("read pool ran %q", q)
		}
	}
	var n int
	if err := d.read.QueryRowContext(ctx, `SELECT count(*) FROM workspaces`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d workspaces after refused writes, want 0", n)
	}
	if v, err := d.RBACVersion(ctx); err != nil || v != 1 {
		t.Errorf("rbac version = %d, %v; want 1", v, err)
	}
	// The writer does write.
	if _, err := d.write.ExecContext(ctx, `INSERT INTO workspaces (id, name, created_at) VALUES ('ws_x', 'x', ?)`, time.Now().UTC()); err != nil {
		t.Fatalf("writer: %v", err)
	}
}

func TestDSN(t *testing.T) {
	t.Parallel()
	w := writeDSN("/data/a b?c#d%e/signalsmith.db")
	for _, want := range []string{"file:///data/a%20b%3Fc%23d%25e/signalsmith.db?", "_txlock=immediate", "journal_mode%28WAL%29",
		"busy_timeout%285000%29", "foreign_keys%281%29", "synchronous%28FULL%29", "_time_format=sqlite"} {
		if !strings.Contains(w, want) {
			t.Errorf("write DSN %q lacks %q", w, want)
		}
	}
	r := readDSN("/data/signalsmith.db")
	for _, want := range []string{"mode=ro", "query_only%281%29", "_time_format=sqlite"} {
		if !strings.Contains(r, want) {
			t.Errorf("read DSN %q lacks %q", r, want)
		}
	}
	if strings.Contains(r, "journal_mode") || strings.Contains(r, "_txlock") {
		t.Errorf("read DSN %q sets writer options", r)
	}
}

func TestMigrationsEmbedded(t *testing.T) {
	t.Parallel()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 {
		t.Fatalf("migrations = %v, want versions from 1", ms)
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].version <= ms[i-1].version {
			t.Errorf("migrations out of order: %d after %d", ms[i].version, ms[i-1].version)
		}
	}
}

// TestIDPrefixesAreKnown holds the store's list of id prefixes, which
// names may not start with, to the prefixes this store assigns.
func TestIDPrefixesAreKnown(t *testing.T) {
	t.Parallel()
	for _, p := range []string{prefixWorkspace, prefixMember, prefixGroup, prefixKey, prefixModel, prefixAudience,
		prefixDestination, prefixSync, prefixAccessFilter, "apr_", "pol_"} {
		if got, ok := store.LooksLikeID(p + "0192"); !ok || got != p {
			t.Errorf("store.LooksLikeID does not know the id prefix %s", p)
		}
	}
}
