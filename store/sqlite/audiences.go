package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// UpdateAudience replaces an audience's name, description and definition.
// A changed definition becomes a new version, kept in the history; the
// same definition keeps the version. The model cannot change.
func (d *DB) UpdateAudience(ctx context.Context, a store.Audience) (store.Audience, error) {
	const op = "update audience"
	switch {
	case len(a.Definition) == 0:
		return store.Audience{}, invalid(op, "definition", "is required")
	case !json.Valid(a.Definition):
		return store.Audience{}, invalid(op, "definition", "is not valid JSON")
	}
	if err := checkObjectName(op, "name", a.Name); err != nil {
		return store.Audience{}, err
	}
	var out store.Audience
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanAudience(tx.QueryRowContext(ctx, `SELECT `+audienceColumns+` WHERE workspace_id = ? AND id = ?`, a.WorkspaceID, a.ID))
		if err != nil {
			return notFound(op, a.ID, err)
		}
		if a.ModelID != "" && a.ModelID != cur.ModelID {
			return invalid(op, "model_id", "cannot change: create a new audience over the other model")
		}
		out = cur
		out.Name, out.Description, out.UpdatedAt = a.Name, a.Description, time.Now().UTC()
		if !bytes.Equal(cur.Definition, a.Definition) {
			out.Definition = append([]byte(nil), a.Definition...)
			out.Version = cur.Version + 1
			_, err := tx.ExecContext(ctx, `INSERT INTO audience_versions (audience_id, version, definition, created_at) VALUES (?, ?, ?, ?)`,
				out.ID, out.Version, string(out.Definition), out.UpdatedAt)
			if err != nil {
				return fmt.Errorf("%s %s: %w", op, a.ID, err)
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE audiences SET name = ?, description = ?, definition = ?, version = ?, updated_at = ?
			WHERE workspace_id = ? AND id = ?`, out.Name, out.Description, string(out.Definition), out.Version, out.UpdatedAt, out.WorkspaceID, out.ID)
		if err := created(op, out.Name, err); err != nil {
			return err
		}
		return bump(ctx, tx, catalogCounter)
	})
	if err != nil {
		return store.Audience{}, err
	}
	return out, nil
}

// DeleteAudience deletes an audience and its history. It is refused with a
// *store.InUseError while a sync sends it or another audience includes or
// excludes it.
func (d *DB) DeleteAudience(ctx context.Context, workspaceID, id string) error {
	const op = "delete audience"
	return d.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanAudience(tx.QueryRowContext(ctx, `SELECT `+audienceColumns+` WHERE workspace_id = ? AND id = ?`, workspaceID, id))
		if err != nil {
			return notFound(op, id, err)
		}
		deps, err := audienceDependents(ctx, tx, workspaceID, id)
		if err != nil {
			return fmt.Errorf("%s %s: %w", op, id, err)
		}
		if len(deps) > 0 {
			return &store.InUseError{Object: "audience " + cur.Name, Dependents: deps}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM audiences WHERE workspace_id = ? AND id = ?`, workspaceID, id); err != nil {
			return fmt.Errorf("%s %s: %w", op, id, err)
		}
		return bump(ctx, tx, catalogCounter)
	})
}

// AudienceDependents lists what DeleteAudience would name as keeping the
// audience from being deleted, in a read-only transaction. It returns
// ErrNotFound for an audience the workspace lacks.
func (d *DB) AudienceDependents(ctx context.Context, workspaceID, id string) ([]store.Dependent, error) {
	const op = "audience dependents"
	tx, err := d.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, id, err)
	}
	defer tx.Rollback()
	if _, err := scanAudience(tx.QueryRowContext(ctx, `SELECT `+audienceColumns+` WHERE workspace_id = ? AND id = ?`, workspaceID, id)); err != nil {
		return nil, notFound(op, id, err)
	}
	deps, err := audienceDependents(ctx, tx, workspaceID, id)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, id, err)
	}
	return deps, nil
}

// audienceDependents lists the syncs that send the audience and the other
// audiences that include or exclude it.
func audienceDependents(ctx context.Context, tx *sql.Tx, workspaceID, id string) ([]store.Dependent, error) {
	var deps []store.Dependent
	rows, err := tx.QueryContext(ctx, `SELECT id FROM syncs WHERE workspace_id = ? AND audience_id = ? ORDER BY id`, workspaceID, id)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var sid string
		if err := rows.Scan(&sid); err != nil {
			rows.Close()
			return nil, err
		}
		deps = append(deps, store.Dependent{Type: "sync", ID: sid, Name: sid, Why: "sync of the audience"})
	}
	rows.Close()
	// Ids are unique random strings, so a quoted id inside another
	// definition is a reference to this audience.
	rows, err = tx.QueryContext(ctx, `SELECT id, name FROM audiences WHERE workspace_id = ? AND id <> ? AND instr(definition, ?) > 0 ORDER BY id`,
		workspaceID, id, `"`+id+`"`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var dep store.Dependent
		if err := rows.Scan(&dep.ID, &dep.Name); err != nil {
			rows.Close()
			return nil, err
		}
		dep.Type, dep.Why = "audience", "includes or excludes it"
		deps = append(deps, dep)
	}
	rows.Close()
	return deps, nil
}
