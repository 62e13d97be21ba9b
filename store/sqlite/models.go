package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// UpdateModel replaces the model with id m.ID (name, description, table or
// sql, primary key, columns, relationships), keeping its creation time,
// setting its update time to now and its version to one more than the
// stored one, in one transaction. It
// returns ErrInvalid for a bad field (as CreateModel), ErrNotFound for a
// model the workspace lacks, ErrConflict for a name another model has, and
// an *store.InUseError when relationships of other models name this model
// by a name it gives up, or one of its columns it drops, or when the
// source (table or SQL) changes while syncs send audiences over the model.
func (d *DB) UpdateModel(ctx context.Context, m store.Model) (store.Model, error) {
	const op = "update model"
	if m.ID == "" {
		return store.Model{}, invalid(op, "id", "is required")
	}
	if err := validateModel(op, &m); err != nil {
		return store.Model{}, err
	}
	m.UpdatedAt = time.Now().UTC()
	cols, rels, err := encodeModel(op, m)
	if err != nil {
		return store.Model{}, err
	}
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanModel(tx.QueryRowContext(ctx, `SELECT `+modelColumns+` WHERE workspace_id = ? AND id = ?`,
			m.WorkspaceID, m.ID))
		if err != nil {
			return notFound(op, m.ID, err)
		}
		m.CreatedAt, m.Version = cur.CreatedAt, cur.Version+1
		refs, err := modelReferences(ctx, tx, cur)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, m.Name, err)
		}
		var broken []store.Dependent
		for _, r := range refs {
			_, hasColumn := m.Column(r.rel.References)
			if (r.rel.Model == cur.Name && m.Name != cur.Name) || !hasColumn {
				broken = append(broken, store.Dependent{Type: "model", ID: r.model.ID, Name: r.model.Name,
					Why: fmt.Sprintf("its relationship %s references %s.%s", r.rel.Name, cur.Name, r.rel.References)})
			}
		}
		if m.Table != cur.Table || m.SQL != cur.SQL {
			synced, err := syncedAudiences(ctx, tx, cur)
			if err != nil {
				return fmt.Errorf("%s %q: %w", op, m.Name, err)
			}
			broken = append(broken, synced...)
		}
		if len(broken) > 0 {
			return &store.InUseError{Object: "model " + cur.Name, Dependents: broken}
		}
		_, err = tx.ExecContext(ctx, `UPDATE models SET name = ?, description = ?, table_name = ?, sql = ?, primary_key = ?,
			columns = ?, relationships = ?, updated_at = ?, version = ? WHERE workspace_id = ? AND id = ?`,
			m.Name, m.Description, m.Table, m.SQL, m.PrimaryKey, string(cols), string(rels), m.UpdatedAt, m.Version,
			m.WorkspaceID, m.ID)
		if err := created(op, m.Name, err); err != nil {
			return err
		}
		return bump(ctx, tx, catalogCounter)
	})
	if err != nil {
		return store.Model{}, err
	}
	return m, d.applyPII(ctx, &m)
}

// DeleteModel deletes a model in one transaction. It returns ErrNotFound for
// a model the workspace lacks, and an *store.InUseError (ErrConflict) when
// audiences are built on it (naming them and their syncs) or other models'
// relationships lead to it.
func (d *DB) DeleteModel(ctx context.Context, workspaceID, id string) error {
	const op = "delete model"
	return d.inTx(ctx, func(tx *sql.Tx) error {
		m, err := scanModel(tx.QueryRowContext(ctx, `SELECT `+modelColumns+` WHERE workspace_id = ? AND id = ?`,
			workspaceID, id))
		if err != nil {
			return notFound(op, id, err)
		}
		deps, err := modelDependents(ctx, tx, m)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, m.Name, err)
		}
		if len(deps) > 0 {
			return &store.InUseError{Object: "model " + m.Name, Dependents: deps}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM models WHERE workspace_id = ? AND id = ?`, workspaceID, id); err != nil {
			return fmt.Errorf("%s %q: %w", op, m.Name, err)
		}
		return bump(ctx, tx, catalogCounter)
	})
}

// ModelDependents lists what DeleteModel would name as keeping the model
// from being deleted, in a read-only transaction so the lists agree with
// each other. It returns ErrNotFound for a model the workspace lacks.
func (d *DB) ModelDependents(ctx context.Context, workspaceID, id string) ([]store.Dependent, error) {
	const op = "model dependents"
	tx, err := d.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, id, err)
	}
	defer tx.Rollback()
	m, err := scanModel(tx.QueryRowContext(ctx, `SELECT `+modelColumns+` WHERE workspace_id = ? AND id = ?`, workspaceID, id))
	if err != nil {
		return nil, notFound(op, id, err)
	}
	deps, err := modelDependents(ctx, tx, m)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, m.Name, err)
	}
	return deps, nil
}

// modelDependents lists what depends on m: audiences over it, the syncs of
// those audiences, and other models with a relationship to it.
func modelDependents(ctx context.Context, tx *sql.Tx, m store.Model) ([]store.Dependent, error) {
	var deps []store.Dependent
	rows, err := tx.QueryContext(ctx, `SELECT a.id, a.name, s.id, d.name FROM audiences a
		LEFT JOIN syncs s ON s.workspace_id = a.workspace_id AND s.audience_id = a.id
		LEFT JOIN destinations d ON d.workspace_id = s.workspace_id AND d.id = s.destination_id
		WHERE a.workspace_id = ? AND a.model_id = ? ORDER BY a.name, s.id`, m.WorkspaceID, m.ID)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	for rows.Next() {
		var audID, audName string
		var syncID, dstName sql.NullString
		if err := rows.Scan(&audID, &audName, &syncID, &dstName); err != nil {
			rows.Close()
			return nil, err
		}
		if !seen[audID] {
			seen[audID] = true
			deps = append(deps, store.Dependent{Type: "audience", ID: audID, Name: audName, Why: "an audience over the model"})
		}
		if syncID.Valid {
			deps = append(deps, store.Dependent{Type: "sync", ID: syncID.String, Name: audName + " to " + dstName.String,
				Why: "syncs audience " + audName})
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	refs, err := modelReferences(ctx, tx, m)
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		deps = append(deps, store.Dependent{Type: "model", ID: r.model.ID, Name: r.model.Name,
			Why: "its relationship " + r.rel.Name + " leads to the model"})
	}
	return deps, nil
}

// syncedAudiences lists the audiences over m that syncs send, and those
// syncs: a new source (another table or SQL) would change who they send,
// unreviewed, so UpdateModel refuses it while they exist.
func syncedAudiences(ctx context.Context, tx *sql.Tx, m store.Model) ([]store.Dependent, error) {
	rows, err := tx.QueryContext(ctx, `SELECT a.id, a.name, s.id FROM audiences a
		JOIN syncs s ON s.workspace_id = a.workspace_id AND s.audience_id = a.id
		WHERE a.workspace_id = ? AND a.model_id = ? ORDER BY a.name, s.id`, m.WorkspaceID, m.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var deps []store.Dependent
	seen := make(map[string]bool)
	for rows.Next() {
		var audID, audName, syncID string
		if err := rows.Scan(&audID, &audName, &syncID); err != nil {
			return nil, err
		}
		if !seen[audID] {
			seen[audID] = true
			deps = append(deps, store.Dependent{Type: "audience", ID: audID, Name: audName,
				Why: "a synced audience over the model: its source cannot change while syncs send it"})
		}
		deps = append(deps, store.Dependent{Type: "sync", ID: syncID, Name: syncID, Why: "syncs audience " + audName})
	}
	return deps, rows.Err()
}

// modelReference is a relationship of another model that leads to a model.
type modelReference struct {
	model store.Model
	rel   store.Relationship
}

// modelReferences lists the relationships of the workspace's other models
// that name m, by name or id.
func modelReferences(ctx context.Context, tx *sql.Tx, m store.Model) ([]modelReference, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+modelColumns+` WHERE workspace_id = ? AND id <> ? ORDER BY name`,
		m.WorkspaceID, m.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var refs []modelReference
	for rows.Next() {
		other, err := scanModel(rows)
		if err != nil {
			return nil, err
		}
		for _, r := range other.Relationships {
			if r.Model == m.Name || r.Model == m.ID {
				refs = append(refs, modelReference{model: other, rel: r})
			}
		}
	}
	return refs, rows.Err()
}
