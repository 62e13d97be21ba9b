package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// prefixSyncRun is the id prefix of sync runs.
const prefixSyncRun = "run_"

var syncRunStates = []string{store.RunQueued, store.RunRunning, store.RunSucceeded, store.RunFailed, store.RunCancelled}

// AcquireSyncLease gives holder the sync's lease until now+ttl when it is
// free, ran out or is holder's already; ErrConflict while another holder's
// lease runs. The check and the write are one statement in one immediate
// transaction, so two processes cannot both win.
func (d *DB) AcquireSyncLease(ctx context.Context, workspaceID, syncID, holder string, now time.Time, ttl time.Duration) error {
	const op = "acquire sync lease"
	if holder == "" || ttl <= 0 {
		return invalid(op, "holder", "and a positive ttl are required")
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, "syncs", workspaceID, syncID)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if !ok {
			return fmt.Errorf("%s: sync %q: %w", op, syncID, store.ErrNotFound)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO sync_leases (workspace_id, sync_id, holder, expires_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (workspace_id, sync_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE sync_leases.holder = excluded.holder OR sync_leases.expires_at <= ?`,
			workspaceID, syncID, holder, now.Add(ttl).UnixNano(), now.UnixNano())
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		} else if n == 0 {
			return fmt.Errorf("%s: sync %q is being run by another holder: %w", op, syncID, store.ErrConflict)
		}
		return nil
	})
}

// ReleaseSyncLease ends holder's lease of the sync, if it holds it.
func (d *DB) ReleaseSyncLease(ctx context.Context, workspaceID, syncID, holder string) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sync_leases WHERE workspace_id = ? AND sync_id = ? AND holder = ?`,
			workspaceID, syncID, holder); err != nil {
			return fmt.Errorf("release sync lease: %w", err)
		}
		return nil
	})
}

// CreateSyncRun stores a new run, assigning its id and start time when
// empty.
func (d *DB) CreateSyncRun(ctx context.Context, r store.SyncRun) (store.SyncRun, error) {
	const op = "create sync run"
	if !oneOf(r.State, syncRunStates) {
		return store.SyncRun{}, invalid(op, "state", "%q is not a run state", r.State)
	}
	if err := ensureID(&r.ID, prefixSyncRun); err != nil {
		return store.SyncRun{}, err
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	r.StartedAt = r.StartedAt.UTC()
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		store.NoteAuditResource(ctx, r.ID)
		ok, err := exists(ctx, tx, "syncs", r.WorkspaceID, r.SyncID)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if !ok {
			return invalid(op, "sync_id", "%q is not a sync of the workspace", r.SyncID)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO sync_runs (id, workspace_id, sync_id, state, trigger, source, added,
			changed, removed, failed, skipped, last_batch, error, started_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.WorkspaceID, r.SyncID, r.State, r.Trigger, r.Source, r.Added, r.Changed, r.Removed, r.Failed,
			r.Skipped, r.LastBatch, r.Error, r.StartedAt, nullTime(r.FinishedAt))
		return created(op, r.ID, err)
	})
	if err != nil {
		return store.SyncRun{}, err
	}
	return r, nil
}

// UpdateSyncRun replaces a run's state, counts, last batch, error and
// finish time.
func (d *DB) UpdateSyncRun(ctx context.Context, r store.SyncRun) error {
	const op = "update sync run"
	if !oneOf(r.State, syncRunStates) {
		return invalid(op, "state", "%q is not a run state", r.State)
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sync_runs SET state = ?, added = ?, changed = ?, removed = ?, failed = ?,
			skipped = ?, last_batch = ?, error = ?, finished_at = ? WHERE workspace_id = ? AND id = ?`,
			r.State, r.Added, r.Changed, r.Removed, r.Failed, r.Skipped, r.LastBatch, r.Error, nullTime(r.FinishedAt),
			r.WorkspaceID, r.ID)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, r.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("%s %q: %w", op, r.ID, err)
		} else if n == 0 {
			return fmt.Errorf("%s %q: %w", op, r.ID, store.ErrNotFound)
		}
		return nil
	})
}

const syncRunColumns = `id, workspace_id, sync_id, state, trigger, source, added, changed, removed, failed, skipped,
	last_batch, error, started_at, finished_at FROM sync_runs`

func scanSyncRun(r interface{ Scan(...any) error }) (store.SyncRun, error) {
	var run store.SyncRun
	var finished sql.NullTime
	if err := r.Scan(&run.ID, &run.WorkspaceID, &run.SyncID, &run.State, &run.Trigger, &run.Source, &run.Added,
		&run.Changed, &run.Removed, &run.Failed, &run.Skipped, &run.LastBatch, &run.Error, &run.StartedAt,
		&finished); err != nil {
		return store.SyncRun{}, err
	}
	run.StartedAt = run.StartedAt.UTC()
	run.FinishedAt = timePtr(finished)
	return run, nil
}

// GetSyncRun returns one run of the workspace.
func (d *DB) GetSyncRun(ctx context.Context, workspaceID, id string) (store.SyncRun, error) {
	r, err := scanSyncRun(d.read.QueryRowContext(ctx, `SELECT `+syncRunColumns+` WHERE workspace_id = ? AND id = ?`,
		workspaceID, id))
	if err != nil {
		return store.SyncRun{}, notFound("get sync run", id, err)
	}
	return r, nil
}

// ListSyncRuns returns a sync's runs, newest first.
func (d *DB) ListSyncRuns(ctx context.Context, workspaceID, syncID string, limit int) ([]store.SyncRun, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := d.read.QueryContext(ctx, `SELECT `+syncRunColumns+` WHERE workspace_id = ? AND sync_id = ?
		ORDER BY started_at DESC, id DESC LIMIT ?`, workspaceID, syncID, limit)
	if err != nil {
		return nil, fmt.Errorf("list sync runs: %w", err)
	}
	defer rows.Close()
	var out []store.SyncRun
	for rows.Next() {
		r, err := scanSyncRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list sync runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sync runs: %w", err)
	}
	return out, nil
}
