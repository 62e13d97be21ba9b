package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// ApplyPolicySet stores a validated policy file as the workspace's active
// set, replacing the previous one (kept as history). An empty source
// deactivates the stored set, so the shipped defaults apply again.
func (d *DB) ApplyPolicySet(ctx context.Context, workspaceID string, ps store.PolicySet) error {
	const op = "apply policy set"
	if ps.Source != "" && ps.Version == "" {
		return invalid(op, "version", "is required")
	}
	if err := checkName(op, "applied_by", ps.AppliedBy); err != nil {
		return err
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		if err := checkWorkspace(ctx, tx, op, workspaceID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE policy_sets SET active = 0 WHERE workspace_id = ? AND active = 1`, workspaceID); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := bump(ctx, tx, settingsCounter); err != nil {
			return err
		}
		if ps.Source == "" {
			return nil
		}
		id, err := newID("pol_")
		if err != nil {
			return err
		}
		at := ps.AppliedAt.UTC()
		if ps.AppliedAt.IsZero() {
			at = time.Now().UTC()
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO policy_sets (id, workspace_id, version, source, applied_by, applied_at, active)
			VALUES (?, ?, ?, ?, ?, ?, 1)`, id, workspaceID, ps.Version, ps.Source, ps.AppliedBy, at)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	})
}

// ActivePolicySet returns the workspace's active stored policy set, or
// ErrNotFound when the shipped defaults apply (or the workspace is
// unknown). It is kept in memory until the settings version moves, which
// ApplyPolicySet bumps.
func (d *DB) ActivePolicySet(ctx context.Context, workspaceID string) (store.PolicySet, error) {
	s, err := d.settingsOf(ctx, workspaceID)
	if err != nil {
		return store.PolicySet{}, fmt.Errorf("active policy set of %s: %w", workspaceID, err)
	}
	if s.policy == nil {
		return store.PolicySet{}, fmt.Errorf("active policy set of %s: %w", workspaceID, store.ErrNotFound)
	}
	return *s.policy, nil
}
