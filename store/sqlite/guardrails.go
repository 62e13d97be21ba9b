package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// Take counts one use of a rate-limit bucket in the sliding window ending at
// now, if fewer than limit uses are in it (and consume is true); otherwise
// it reports how long until the oldest use leaves the window. Check and
// count happen in one immediate transaction, so concurrent callers (also in
// other processes) cannot both take the last use. It satisfies
// guardrails.RateLimiter.
//
// It deliberately runs its own transaction rather than inTx: counting a use
// is not the state change a call's audit event records.
func (d *DB) Take(ctx context.Context, bucket string, limit int, window time.Duration, now time.Time, consume bool) (bool, time.Duration, error) {
	if limit < 1 || window <= 0 {
		return false, 0, fmt.Errorf("rate limit %s: %w: limit and window must be positive", bucket, store.ErrInvalid)
	}
	now = now.UTC()
	start := now.Add(-window)
	db := d.read
	if consume {
		db = d.write
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", bucket, err)
	}
	defer tx.Rollback()
	var n int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM rate_limit_uses WHERE bucket = ? AND at > ?`, bucket, start).Scan(&n)
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", bucket, err)
	}
	if n >= limit {
		// The call after the limit may come when the oldest use in the
		// window leaves it.
		var oldest time.Time
		err = tx.QueryRowContext(ctx, `SELECT at FROM rate_limit_uses WHERE bucket = ? AND at > ? ORDER BY at LIMIT 1`, bucket, start).Scan(&oldest)
		if err != nil {
			return false, 0, fmt.Errorf("rate limit %s: %w", bucket, err)
		}
		return false, max(oldest.Add(window).Sub(now), time.Second), nil
	}
	if !consume {
		return true, 0, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM rate_limit_uses WHERE bucket = ? AND at <= ?`, bucket, start); err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", bucket, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO rate_limit_uses (bucket, at) VALUES (?, ?)`, bucket, now); err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", bucket, err)
	}
	if err := tx.Commit(); err != nil {
		return false, 0, fmt.Errorf("rate limit %s: commit: %w", bucket, err)
	}
	return true, 0, nil
}

// Release removes one use of bucket that Take counted at at: the call it
// counted did not go on. Uses at the same instant are alike, so any one of
// them goes. A use that is not there (the window moved past it) is no
// error. It satisfies guardrails.RateLimiter.
func (d *DB) Release(ctx context.Context, bucket string, at time.Time) error {
	_, err := d.write.ExecContext(ctx, `DELETE FROM rate_limit_uses WHERE rowid =
		(SELECT rowid FROM rate_limit_uses WHERE bucket = ? AND at = ? LIMIT 1)`, bucket, at.UTC())
	if err != nil {
		return fmt.Errorf("rate limit %s: release: %w", bucket, err)
	}
	return nil
}

// WritesFrozen reports the workspace's ai_writes_frozen kill switch, kept
// in memory until the settings version moves.
func (d *DB) WritesFrozen(ctx context.Context, workspaceID string) (bool, error) {
	s, err := d.settingsOf(ctx, workspaceID)
	if err != nil {
		return false, err
	}
	return s.frozen, nil
}

// SetWritesFrozen turns the workspace's kill switch on or off. It takes
// effect on the next call in every process: it bumps the settings version
// that WritesFrozen checks on every call.
func (d *DB) SetWritesFrozen(ctx context.Context, workspaceID string, frozen bool) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE workspaces SET ai_writes_frozen = ? WHERE id = ?`, frozen, workspaceID)
		if err != nil {
			return fmt.Errorf("workspace %s: set kill switch: %w", workspaceID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("workspace %s: %w", workspaceID, store.ErrNotFound)
		}
		return bump(ctx, tx, settingsCounter)
	})
}
