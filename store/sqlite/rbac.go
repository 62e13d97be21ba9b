package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/signalsmith/agent-server/store"
)

var (
	// roleName is the form of a role name.
	roleName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	// permissionName is the form of a permission: {category}.{action}.
	permissionName = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$`)
)

// checkRoleName validates a role name: 1-64 lowercase letters, digits, '_'
// and '-'.
func checkRoleName(op, name string) error {
	if !roleName.MatchString(name) {
		return invalid(op, "role name", "%q must be 1-64 lowercase letters, digits, '_' or '-'", name)
	}
	return nil
}

// permissionSet validates permissions and returns them sorted without
// duplicates.
func permissionSet(op, role string, perms []string) ([]string, error) {
	out := make([]string, 0, len(perms))
	for _, p := range perms {
		if len(p) > 128 || !permissionName.MatchString(p) {
			return nil, invalid(op, "permissions", "of role %q: %q is not of the form category.action", role, p)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// EnsureWorkspace returns the workspace named name, creating it when absent,
// and makes its built-in roles exactly builtIn: missing ones are created,
// permissions are brought up to date, and a built-in role no longer listed is
// deleted, or, while members still hold it, kept as a custom role so nobody
// loses access silently. rbac_version changes only when something did. It
// returns ErrInvalid for a bad workspace name, role name or permission.
func (d *DB) EnsureWorkspace(ctx context.Context, name string, builtIn []store.Role) (store.Workspace, error) {
	const op = "ensure workspace"
	if err := checkName(op, "name", name); err != nil {
		return store.Workspace{}, err
	}
	want := make(map[string][]string, len(builtIn))
	for _, r := range builtIn {
		if err := checkRoleName(op, r.Name); err != nil {
			return store.Workspace{}, err
		}
		if _, dup := want[r.Name]; dup {
			return store.Workspace{}, invalid(op, "built-in roles", "name %q twice", r.Name)
		}
		perms, err := permissionSet(op, r.Name, r.Permissions)
		if err != nil {
			return store.Workspace{}, err
		}
		want[r.Name] = perms
	}

	var ws store.Workspace
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT id, name, created_at FROM workspaces WHERE name = ?`, name).
			Scan(&ws.ID, &ws.Name, &ws.CreatedAt)
		if errors.Is(err, sql.ErrNoRows) {
			id, err := newID(prefixWorkspace)
			if err != nil {
				return err
			}
			ws = store.Workspace{ID: id, Name: name, CreatedAt: utc(time.Now())}
			_, err = tx.ExecContext(ctx, `INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?)`,
				ws.ID, ws.Name, ws.CreatedAt)
			if err != nil {
				return fmt.Errorf("%s %q: %w", op, name, err)
			}
		} else if err != nil {
			return fmt.Errorf("%s %q: %w", op, name, err)
		}

		changed := false
		for _, r := range builtIn {
			c, err := putRole(ctx, tx, ws.ID, r.Name, true, want[r.Name])
			if err != nil {
				return fmt.Errorf("%s %q: %w", op, name, err)
			}
			changed = changed || c
		}

		// Built-in roles this release no longer has.
		rows, err := tx.QueryContext(ctx, `SELECT r.name,
			EXISTS (SELECT 1 FROM members m WHERE m.workspace_id = r.workspace_id AND m.role = r.name)
			FROM roles r WHERE r.workspace_id = ? AND r.built_in = 1`, ws.ID)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, name, err)
		}
		held := make(map[string]bool)
		for rows.Next() {
			var n string
			var h bool
			if err := rows.Scan(&n, &h); err != nil {
				rows.Close()
				return fmt.Errorf("%s %q: %w", op, name, err)
			}
			if _, ok := want[n]; !ok {
				held[n] = h
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("%s %q: %w", op, name, err)
		}
		for n, h := range held {
			q := `DELETE FROM roles WHERE workspace_id = ? AND name = ?`
			if h {
				q = `UPDATE roles SET built_in = 0 WHERE workspace_id = ? AND name = ?`
			}
			if _, err := tx.ExecContext(ctx, q, ws.ID, n); err != nil {
				return fmt.Errorf("%s %q: retire role %q: %w", op, name, n, err)
			}
			changed = true
		}

		if changed {
			return bump(ctx, tx, authCounter)
		}
		return nil
	})
	if err != nil {
		return store.Workspace{}, err
	}
	ws.CreatedAt = ws.CreatedAt.UTC()
	return ws, nil
}

// putRole creates or updates a role with exactly perms (sorted, unique) and
// reports whether anything changed.
func putRole(ctx context.Context, tx *sql.Tx, workspaceID, name string, builtIn bool, perms []string) (bool, error) {
	changed := false
	var cur bool
	err := tx.QueryRowContext(ctx, `SELECT built_in FROM roles WHERE workspace_id = ? AND name = ?`, workspaceID, name).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO roles (workspace_id, name, built_in, created_at) VALUES (?, ?, ?, ?)`,
			workspaceID, name, builtIn, utc(time.Now())); err != nil {
			return false, fmt.Errorf("put role %q: %w", name, err)
		}
		changed = true
	case err != nil:
		return false, fmt.Errorf("put role %q: %w", name, err)
	case cur != builtIn:
		if _, err := tx.ExecContext(ctx, `UPDATE roles SET built_in = ? WHERE workspace_id = ? AND name = ?`,
			builtIn, workspaceID, name); err != nil {
			return false, fmt.Errorf("put role %q: %w", name, err)
		}
		changed = true
	}

	have, err := rolePermissions(ctx, tx, workspaceID, name)
	if err != nil {
		return false, fmt.Errorf("put role %q: %w", name, err)
	}
	for _, p := range have {
		if _, found := slices.BinarySearch(perms, p); found {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM role_permissions WHERE workspace_id = ? AND role = ? AND permission = ?`,
			workspaceID, name, p); err != nil {
			return false, fmt.Errorf("put role %q: %w", name, err)
		}
		changed = true
	}
	for _, p := range perms {
		if _, found := slices.BinarySearch(have, p); found {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO role_permissions (workspace_id, role, permission) VALUES (?, ?, ?)`,
			workspaceID, name, p); err != nil {
			return false, fmt.Errorf("put role %q: %w", name, err)
		}
		changed = true
	}
	return changed, nil
}

// rolePermissions returns a role's permissions, sorted.
func rolePermissions(ctx context.Context, q querier, workspaceID, role string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT permission FROM role_permissions
		WHERE workspace_id = ? AND role = ? ORDER BY permission`, workspaceID, role)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Roles lists a workspace's roles by name, each with its permissions sorted.
// An unknown workspace has no roles.
func (d *DB) Roles(ctx context.Context, workspaceID string) ([]store.Role, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT r.name, r.built_in, p.permission
		FROM roles r LEFT JOIN role_permissions p ON p.workspace_id = r.workspace_id AND p.role = r.name
		WHERE r.workspace_id = ?
		ORDER BY r.name, p.permission`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	defer rows.Close()
	var out []store.Role
	for rows.Next() {
		var name string
		var builtIn bool
		var perm sql.NullString
		if err := rows.Scan(&name, &builtIn, &perm); err != nil {
			return nil, fmt.Errorf("list roles: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Name != name {
			out = append(out, store.Role{WorkspaceID: workspaceID, Name: name, BuiltIn: builtIn, Permissions: []string{}})
		}
		if perm.Valid {
			r := &out[len(out)-1]
			r.Permissions = append(r.Permissions, perm.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return out, nil
}

// PutRole creates or replaces the custom role r.Name with exactly
// r.Permissions. It returns ErrInvalid for a bad name or permission or for
// r.BuiltIn set, ErrConflict when r.Name is a built-in role of the workspace
// and ErrNotFound for an unknown workspace. rbac_version changes only when
// the role did.
func (d *DB) PutRole(ctx context.Context, r store.Role) error {
	const op = "put role"
	if err := checkRoleName(op, r.Name); err != nil {
		return err
	}
	if r.BuiltIn {
		return invalid(op, "built_in", "cannot be set on role %q: built-in roles come with the release", r.Name)
	}
	perms, err := permissionSet(op, r.Name, r.Permissions)
	if err != nil {
		return err
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		if err := checkWorkspace(ctx, tx, op, r.WorkspaceID); err != nil {
			return err
		}
		var builtIn bool
		err := tx.QueryRowContext(ctx, `SELECT built_in FROM roles WHERE workspace_id = ? AND name = ?`,
			r.WorkspaceID, r.Name).Scan(&builtIn)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s %q: %w", op, r.Name, err)
		}
		if builtIn {
			return fmt.Errorf("%s %q: built-in roles cannot be changed: %w", op, r.Name, store.ErrConflict)
		}
		changed, err := putRole(ctx, tx, r.WorkspaceID, r.Name, false, perms)
		if err != nil {
			return err
		}
		if changed {
			return bump(ctx, tx, authCounter)
		}
		return nil
	})
}

// DeleteRole deletes a custom role. It returns ErrNotFound for an unknown
// role and ErrConflict for a built-in role or one that members still hold.
func (d *DB) DeleteRole(ctx context.Context, workspaceID, name string) error {
	const op = "delete role"
	return d.inTx(ctx, func(tx *sql.Tx) error {
		var builtIn bool
		var holders int
		err := tx.QueryRowContext(ctx, `SELECT r.built_in,
			(SELECT count(*) FROM members m WHERE m.workspace_id = r.workspace_id AND m.role = r.name)
			FROM roles r WHERE r.workspace_id = ? AND r.name = ?`, workspaceID, name).Scan(&builtIn, &holders)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%s %q: %w", op, name, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("%s %q: %w", op, name, err)
		case builtIn:
			return fmt.Errorf("%s %q: built-in roles cannot be deleted: %w", op, name, store.ErrConflict)
		case holders > 0:
			return fmt.Errorf("%s %q: %d members hold it: %w", op, name, holders, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM roles WHERE workspace_id = ? AND name = ?`, workspaceID, name); err != nil {
			return fmt.Errorf("%s %q: %w", op, name, err)
		}
		return bump(ctx, tx, authCounter)
	})
}

// memberColumns selects a member (alias m) with its group names as a JSON
// array; scanMember reads them.
const memberColumns = `m.id, m.workspace_id, m.name, m.kind, m.role, COALESCE(m.owner_member_id, ''), COALESCE(m.email, ''), m.created_at,
	(SELECT json_group_array(g.name) FROM group_members gm JOIN groups g ON g.id = gm.group_id WHERE gm.member_id = m.id)`

func scanMember(s interface{ Scan(...any) error }) (store.Member, error) {
	var m store.Member
	var groups string
	if err := s.Scan(&m.ID, &m.WorkspaceID, &m.Name, &m.Kind, &m.Role, &m.OwnerID, &m.Email, &m.CreatedAt, &groups); err != nil {
		return store.Member{}, err
	}
	g, err := groupNames(groups)
	if err != nil {
		return store.Member{}, err
	}
	m.Groups = g
	m.CreatedAt = m.CreatedAt.UTC()
	return m, nil
}

// groupNames decodes a JSON array of group names, sorted; nil when empty.
func groupNames(js string) ([]string, error) {
	var g []string
	if js != "" {
		if err := json.Unmarshal([]byte(js), &g); err != nil {
			return nil, fmt.Errorf("decode groups: %w", err)
		}
	}
	if len(g) == 0 {
		return nil, nil
	}
	sort.Strings(g)
	return g, nil
}

// Members lists a workspace's members by name, with their groups.
func (d *DB) Members(ctx context.Context, workspaceID string) ([]store.Member, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+memberColumns+` FROM members m
		WHERE m.workspace_id = ? ORDER BY m.name`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	var out []store.Member
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return out, nil
}

// SetMemberRole gives a member another role. It returns ErrNotFound for a
// member not in the workspace and ErrInvalid for a role the workspace lacks.
// Setting the role a member already has changes nothing.
func (d *DB) SetMemberRole(ctx context.Context, workspaceID, memberID, role string) error {
	const op = "set member role"
	return d.inTx(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT role FROM members WHERE workspace_id = ? AND id = ?`,
			workspaceID, memberID).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s: member %q: %w", op, memberID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := checkRole(ctx, tx, op, workspaceID, role); err != nil {
			return err
		}
		if cur == role {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE members SET role = ? WHERE workspace_id = ? AND id = ?`,
			role, workspaceID, memberID); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return bump(ctx, tx, authCounter)
	})
}

// checkRole returns ErrInvalid unless the workspace has the role.
func checkRole(ctx context.Context, q querier, op, workspaceID, role string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM roles WHERE workspace_id = ? AND name = ?`, workspaceID, role).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return invalid(op, "role", "%q does not exist in the workspace", role)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// AddToGroup adds a member to the named group of its workspace, creating the
// group when absent. It returns ErrNotFound for a member not in the
// workspace and ErrInvalid for a bad group name; adding a member twice
// changes nothing.
func (d *DB) AddToGroup(ctx context.Context, workspaceID, memberID, group string) error {
	const op = "add to group"
	if err := checkName(op, "group", group); err != nil {
		return err
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM members WHERE workspace_id = ? AND id = ?`, workspaceID, memberID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s %q: member %q: %w", op, group, memberID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, group, err)
		}
		var groupID string
		err = tx.QueryRowContext(ctx, `SELECT id FROM groups WHERE workspace_id = ? AND name = ?`, workspaceID, group).Scan(&groupID)
		if errors.Is(err, sql.ErrNoRows) {
			if groupID, err = newID(prefixGroup); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO groups (id, workspace_id, name, created_at) VALUES (?, ?, ?, ?)`,
				groupID, workspaceID, group, utc(time.Now()))
		}
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, group, err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO group_members (workspace_id, group_id, member_id) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, workspaceID, groupID, memberID)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, group, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, group, err)
		}
		if n == 0 {
			return nil // already a member
		}
		return bump(ctx, tx, authCounter)
	})
}

// RemoveFromGroup removes a member from the named group of its workspace.
// It returns ErrNotFound when the member is not in that group.
func (d *DB) RemoveFromGroup(ctx context.Context, workspaceID, memberID, group string) error {
	const op = "remove from group"
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE workspace_id = ? AND member_id = ?
			AND group_id = (SELECT id FROM groups WHERE workspace_id = ? AND name = ?)`,
			workspaceID, memberID, workspaceID, group)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, group, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, group, err)
		}
		if n == 0 {
			return fmt.Errorf("%s %q: member %q is not in it: %w", op, group, memberID, store.ErrNotFound)
		}
		return bump(ctx, tx, authCounter)
	})
}

// RBACVersion returns the counter that changes with every role, member or
// group change in any workspace.
func (d *DB) RBACVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := d.read.QueryRowContext(ctx, `SELECT version FROM rbac_version WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read rbac version: %w", err)
	}
	return v, nil
}
