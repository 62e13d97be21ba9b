package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// PIIClasses lists the workspace's classified source columns by column.
func (d *DB) PIIClasses(ctx context.Context, workspaceID string) ([]store.PIIClass, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT column_ref, level, updated_at, updated_by FROM pii_classes
		WHERE workspace_id = ? ORDER BY column_ref`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list pii classes: %w", err)
	}
	defer rows.Close()
	out := []store.PIIClass{}
	for rows.Next() {
		var c store.PIIClass
		if err := rows.Scan(&c.Column, &c.Level, &c.UpdatedAt, &c.UpdatedBy); err != nil {
			return nil, fmt.Errorf("list pii classes: %w", err)
		}
		c.UpdatedAt, c.Classified = c.UpdatedAt.UTC(), true
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pii classes: %w", err)
	}
	return out, nil
}

// SetPIIClasses classifies source columns, replacing their earlier levels,
// in one transaction (with the call's pending audit event, if any). It
// returns ErrInvalid for a column that is not schema.table.column, an
// unknown level or a missing updater, and ErrNotFound for an unknown
// workspace; nothing is written then.
func (d *DB) SetPIIClasses(ctx context.Context, workspaceID string, classes []store.PIIClass) error {
	const op = "set pii classes"
	if len(classes) == 0 {
		return invalid(op, "columns", "are required")
	}
	now := time.Now().UTC()
	for i := range classes {
		c := &classes[i]
		ref, err := store.NormalizeSourceColumn(c.Column)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		c.Column = ref
		if !store.ValidPIILevel(c.Level) {
			return invalid(op, "level", "%q of %s is not none, redacted, sync_only or blocked", c.Level, ref)
		}
		if err := checkName(op, "updated_by", c.UpdatedBy); err != nil {
			return err
		}
		if c.UpdatedAt.IsZero() {
			c.UpdatedAt = now
		}
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		if err := checkWorkspace(ctx, tx, op, workspaceID); err != nil {
			return err
		}
		for _, c := range classes {
			_, err := tx.ExecContext(ctx, `INSERT INTO pii_classes (workspace_id, column_ref, level, updated_at, updated_by)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT (workspace_id, column_ref)
				DO UPDATE SET level = excluded.level, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
				workspaceID, c.Column, c.Level, c.UpdatedAt.UTC(), c.UpdatedBy)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
		}
		// Models' effective levels are cached with the catalog.
		return bump(ctx, tx, catalogCounter)
	})
}

// readPIILevels reads the workspace's classification for computing effective
// model column levels.
func readPIILevels(ctx context.Context, q querier, workspaceID string) (store.PIILevels, error) {
	rows, err := q.QueryContext(ctx, `SELECT column_ref, level FROM pii_classes WHERE workspace_id = ?`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("read pii classes: %w", err)
	}
	defer rows.Close()
	levels := store.PIILevels{}
	for rows.Next() {
		var ref, level string
		if err := rows.Scan(&ref, &level); err != nil {
			return nil, fmt.Errorf("read pii classes: %w", err)
		}
		levels[ref] = level
	}
	return levels, rows.Err()
}
