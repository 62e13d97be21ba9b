package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// prefixAccessFilter is the id prefix of access filters.
const prefixAccessFilter = "flt_"

// PutAccessFilter creates an access filter or, when f.ID is set, replaces
// that filter, in one transaction that also bumps rbac_version. The group is
// created when the workspace has none of that name. The filter must be
// valid (store.AccessFilter.Normalize) and on a table of the analytics
// schema; whether the column exists is for the caller to check against the
// warehouse (store.AccessFilter.CheckTable), and the warehouse checks it
// again on every query. It returns ErrInvalid, ErrNotFound for an unknown
// workspace or filter id, or the filter as stored.
func (d *DB) PutAccessFilter(ctx context.Context, f store.AccessFilter) (store.AccessFilter, error) {
	const op = "put access filter"
	if f.WorkspaceID == "" {
		return store.AccessFilter{}, invalid(op, "workspace_id", "is required")
	}
	if err := f.Normalize(); err != nil {
		return store.AccessFilter{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkName(op, "group", f.Group); err != nil {
		return store.AccessFilter{}, err
	}
	if schema, _, _ := f.SplitTable(); schema != store.SchemaAnalytics {
		return store.AccessFilter{}, invalid(op, "table", "%q is not in the %s schema, the only one queries read", f.Table, store.SchemaAnalytics)
	}
	value, err := json.Marshal(f.Value)
	if err != nil {
		return store.AccessFilter{}, invalid(op, "value", "cannot be encoded as JSON")
	}
	replace := f.ID != ""
	if err := ensureID(&f.ID, prefixAccessFilter); err != nil {
		return store.AccessFilter{}, err
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	f.CreatedAt = f.CreatedAt.UTC()
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		if err := checkWorkspace(ctx, tx, op, f.WorkspaceID); err != nil {
			return err
		}
		groupID, err := ensureGroup(ctx, tx, f.WorkspaceID, f.Group)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if replace {
			res, err := tx.ExecContext(ctx, `UPDATE access_filters SET group_id = ?, table_name = ?, column_name = ?,
				operator = ?, value = ? WHERE workspace_id = ? AND id = ?`,
				groupID, f.Table, f.Column, f.Operator, string(value), f.WorkspaceID, f.ID)
			if err != nil {
				return fmt.Errorf("%s %s: %w", op, f.ID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("%s %s: %w", op, f.ID, err)
			}
			if n == 0 {
				return fmt.Errorf("%s %q: %w", op, f.ID, store.ErrNotFound)
			}
			return bump(ctx, tx, authCounter)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO access_filters (id, workspace_id, group_id, table_name, column_name,
			operator, value, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			f.ID, f.WorkspaceID, groupID, f.Table, f.Column, f.Operator, string(value), f.CreatedAt)
		if err := created(op, f.ID, err); err != nil {
			return err
		}
		return bump(ctx, tx, authCounter)
	})
	if err != nil {
		return store.AccessFilter{}, err
	}
	if replace {
		// The creation time is the stored one.
		return d.accessFilter(ctx, f.WorkspaceID, f.ID)
	}
	return f, nil
}

// ensureGroup returns the id of the workspace's group named name, creating
// it when absent.
func ensureGroup(ctx context.Context, tx *sql.Tx, workspaceID, name string) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM groups WHERE workspace_id = ? AND name = ?`, workspaceID, name).Scan(&id)
	if !errors.Is(err, sql.ErrNoRows) {
		return id, err
	}
	if id, err = newID(prefixGroup); err != nil {
		return "", err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO groups (id, workspace_id, name, created_at) VALUES (?, ?, ?, ?)`,
		id, workspaceID, name, utc(time.Now()))
	return id, err
}

const accessFilterColumns = `f.id, f.workspace_id, g.name, f.table_name, f.column_name, f.operator, f.value, f.created_at
	FROM access_filters f JOIN groups g ON g.id = f.group_id`

func scanAccessFilter(s interface{ Scan(...any) error }) (store.AccessFilter, error) {
	var f store.AccessFilter
	var value string
	if err := s.Scan(&f.ID, &f.WorkspaceID, &f.Group, &f.Table, &f.Column, &f.Operator, &value, &f.CreatedAt); err != nil {
		return store.AccessFilter{}, err
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(value)))
	dec.UseNumber()
	if err := dec.Decode(&f.Value); err != nil {
		return store.AccessFilter{}, fmt.Errorf("decode value of access filter %s: %w", f.ID, err)
	}
	if err := f.Normalize(); err != nil {
		return store.AccessFilter{}, fmt.Errorf("access filter %s as stored: %w", f.ID, err)
	}
	f.CreatedAt = f.CreatedAt.UTC()
	return f, nil
}

// accessFilter reads one filter.
func (d *DB) accessFilter(ctx context.Context, workspaceID, id string) (store.AccessFilter, error) {
	f, err := scanAccessFilter(d.read.QueryRowContext(ctx, `SELECT `+accessFilterColumns+`
		WHERE f.workspace_id = ? AND f.id = ?`, workspaceID, id))
	if err != nil {
		return store.AccessFilter{}, notFound("get access filter", id, err)
	}
	return f, nil
}

// ListAccessFilters lists a workspace's access filters by group name, table
// and id.
func (d *DB) ListAccessFilters(ctx context.Context, workspaceID string) ([]store.AccessFilter, error) {
	return d.accessFilters(ctx, "list access filters", `SELECT `+accessFilterColumns+`
		WHERE f.workspace_id = ? ORDER BY g.name, f.table_name, f.id`, workspaceID)
}

// AccessFiltersFor returns the access filters of the groups in p.Groups
// and of the groups p.MemberID is in now, in p's workspace: the union of
// both, so neither a stale principal nor a membership change made during
// the call lets a query see more rows. For an agent it adds the filters of
// the groups its human is in (DESIGN.md principle 5): filters combine with
// AND, so the agent sees only rows both it and its human may see. A store error is returned as is:
// the caller must not run the query without filters then. The answer is
// kept in memory until the auth version moves (every filter, group or
// member change bumps it, in any process).
func (d *DB) AccessFiltersFor(ctx context.Context, p store.Principal) ([]store.AccessFilter, error) {
	op := "access filters for " + p.MemberID
	groups, err := json.Marshal(p.Groups)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if p.Groups == nil {
		groups = []byte("[]")
	}
	// The version is read before the filters, so what is kept under it is
	// never older than it.
	v, err := d.versions(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	key := filtersKey(p)
	if fs, ok := d.cache.filters.get(key, v.auth); ok {
		return cloneFilters(fs), nil
	}
	rows, err := d.stmts.accessFilters.QueryContext(ctx, p.WorkspaceID, p.WorkspaceID, p.MemberID, p.OwnerID, p.WorkspaceID, p.MemberID, string(groups))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	fs, err := scanAccessFilters(op, rows)
	if err != nil {
		return nil, err
	}
	d.cache.filters.put(key, v.auth, fs)
	return cloneFilters(fs), nil
}

// selectAccessFiltersFor is AccessFiltersFor's query. An agent's human is
// the owner the principal names and the one the store names now: both, so
// neither a stale principal nor a stale store read lets the agent see more
// than its human.
const selectAccessFiltersFor = `SELECT ` + accessFilterColumns + `
		WHERE f.workspace_id = ? AND (
			f.group_id IN (SELECT group_id FROM group_members WHERE workspace_id = ? AND (member_id = ? OR member_id = ?
				OR member_id = (SELECT owner_member_id FROM members WHERE workspace_id = ? AND id = ?)))
			OR g.name IN (SELECT value FROM json_each(?)))
		ORDER BY f.table_name, f.id`

func (d *DB) accessFilters(ctx context.Context, op, query string, args ...any) ([]store.AccessFilter, error) {
	rows, err := d.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return scanAccessFilters(op, rows)
}

// scanAccessFilters reads and closes rows of accessFilterColumns.
func scanAccessFilters(op string, rows *sql.Rows) ([]store.AccessFilter, error) {
	defer rows.Close()
	out := []store.AccessFilter{}
	for rows.Next() {
		f, err := scanAccessFilter(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// DeleteAccessFilter deletes an access filter and bumps rbac_version in the
// same transaction. It returns ErrNotFound when the workspace has no filter
// with that id.
func (d *DB) DeleteAccessFilter(ctx context.Context, workspaceID, id string) error {
	const op = "delete access filter"
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM access_filters WHERE workspace_id = ? AND id = ?`, workspaceID, id)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, id, err)
		}
		if n == 0 {
			return fmt.Errorf("%s %q: %w", op, strings.TrimSpace(id), store.ErrNotFound)
		}
		return bump(ctx, tx, authCounter)
	})
}
