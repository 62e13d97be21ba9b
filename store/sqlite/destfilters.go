package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// Destination filters (store.DestinationFilters), migration 0020.

var _ store.DestinationFilters = (*DB)(nil)

const prefixDestinationFilter = "dfl_"

const destinationFilterColumns = `id, workspace_id, priority, category, environment, COALESCE(destination_id, ''),
	model_id, column_name, pii_level, effect, rate_limit, per, reason, created_at, created_by FROM destination_filters`

// ListDestinationFilters returns the workspace's filters, lowest priority
// first.
func (d *DB) ListDestinationFilters(ctx context.Context, workspaceID string) ([]store.DestinationFilter, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+destinationFilterColumns+` WHERE workspace_id = ?
		ORDER BY priority, id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list destination filters: %w", err)
	}
	defer rows.Close()
	var out []store.DestinationFilter
	for rows.Next() {
		var f store.DestinationFilter
		if err := rows.Scan(&f.ID, &f.WorkspaceID, &f.Priority, &f.Category, &f.Environment, &f.DestinationID,
			&f.Model, &f.Column, &f.PIILevel, &f.Effect, &f.Limit, &f.Per, &f.Reason, &f.CreatedAt, &f.CreatedBy); err != nil {
			return nil, fmt.Errorf("list destination filters: %w", err)
		}
		f.CreatedAt = f.CreatedAt.UTC()
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list destination filters: %w", err)
	}
	return out, nil
}

// CreateDestinationFilter stores a filter; a destination of another
// workspace is refused as one the workspace lacks.
func (d *DB) CreateDestinationFilter(ctx context.Context, f store.DestinationFilter) (store.DestinationFilter, error) {
	const op = "create destination filter"
	switch f.Effect {
	case store.FilterBlock, store.FilterDrop, store.FilterHash, store.FilterAllow, store.FilterAllowUnconsented, store.FilterRateLimit:
	default:
		return store.DestinationFilter{}, invalid(op, "effect", "%q is not known", f.Effect)
	}
	if f.Reason == "" {
		return store.DestinationFilter{}, invalid(op, "reason", "is required")
	}
	if f.ID == "" {
		id, err := newID(prefixDestinationFilter)
		if err != nil {
			return store.DestinationFilter{}, err
		}
		f.ID = id
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	f.CreatedAt = f.CreatedAt.UTC()
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		if err := checkWorkspace(ctx, tx, op, f.WorkspaceID); err != nil {
			return err
		}
		if f.DestinationID != "" {
			ok, err := exists(ctx, tx, "destinations", f.WorkspaceID, f.DestinationID)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			if !ok {
				return invalid(op, "destination", "%q is not a destination of the workspace", f.DestinationID)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO destination_filters (id, workspace_id, priority, category, environment,
			destination_id, model_id, column_name, pii_level, effect, rate_limit, per, reason, created_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			f.ID, f.WorkspaceID, f.Priority, f.Category, f.Environment, nullString(f.DestinationID), f.Model, f.Column,
			f.PIILevel, f.Effect, f.Limit, f.Per, f.Reason, f.CreatedAt, f.CreatedBy)
		if err != nil {
			if isUnique(err) {
				return fmt.Errorf("%s %q: the id is taken: %w", op, f.ID, store.ErrConflict)
			}
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	})
	if err != nil {
		return store.DestinationFilter{}, err
	}
	return f, nil
}

// DeleteDestinationFilter deletes one filter of the workspace.
func (d *DB) DeleteDestinationFilter(ctx context.Context, workspaceID, id string) error {
	const op = "delete destination filter"
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM destination_filters WHERE workspace_id = ? AND id = ?`, workspaceID, id)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s %q: %w", op, id, store.ErrNotFound)
		}
		return nil
	})
}

// DestinationRecordsSince counts what finished runs of the destination's
// syncs sent since a time.
func (d *DB) DestinationRecordsSince(ctx context.Context, workspaceID, destinationID string, since time.Time) (int64, error) {
	var n int64
	err := d.read.QueryRowContext(ctx, `SELECT COALESCE(sum(r.added + r.changed + r.removed), 0)
		FROM sync_runs r JOIN syncs s ON s.workspace_id = r.workspace_id AND s.id = r.sync_id
		WHERE r.workspace_id = ? AND s.destination_id = ? AND r.state <> 'running' AND r.started_at >= ?`,
		workspaceID, destinationID, since.UTC()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("destination records since: %w", err)
	}
	return n, nil
}
