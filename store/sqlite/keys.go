package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// keyPrefix is the form of a key's public lookup prefix.
var keyPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// touchInterval is how often at most a key's last use is written.
const touchInterval = time.Minute

// keyColumns selects a key (alias k) with its member (alias m); scanKey
// reads them.
const keyColumns = `k.id, k.workspace_id, k.member_id, m.name, k.name, k.kind, m.role, k.prefix, k.hash,
	k.created_at, k.expires_at, k.revoked_at, k.last_used_at
	FROM api_keys k JOIN members m ON m.id = k.member_id`

func scanKey(s interface{ Scan(...any) error }) (store.Key, error) {
	var k store.Key
	var expires, revoked, used sql.NullTime
	err := s.Scan(&k.ID, &k.WorkspaceID, &k.MemberID, &k.MemberName, &k.Name, &k.Kind, &k.Role, &k.Prefix, &k.Hash,
		&k.CreatedAt, &expires, &revoked, &used)
	if err != nil {
		return store.Key{}, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = timePtr(expires), timePtr(revoked), timePtr(used)
	return k, nil
}

// CreateKey stores a new key for the member k.MemberName, creating the
// member (with k.Role and k.Kind, for a user the email k.Email, for an agent
// the owner k.OwnerName) when the workspace has none of that name. Every
// agent key names its owner, a user member: an agent acts for one human
// (DESIGN.md section 3). A user member is one person, known by an email
// unique in the workspace regardless of case. An existing agent without an
// owner (from before owners were required) takes k.OwnerName as its owner,
// and an existing user without an email takes k.Email. The key's name
// defaults to the member's. It returns ErrInvalid for a bad field, an
// unknown role or kind, an agent key without an owner, an owner that is not
// a user member, an email on an agent key, a new user member without an
// email, or an expiry in the past; ErrConflict when the member exists with
// another role, kind, owner or email, when the email belongs to another
// member, or the prefix is taken; ErrNotFound for an unknown workspace. The
// returned key carries no hash.
func (d *DB) CreateKey(ctx context.Context, nk store.NewKey) (store.Key, error) {
	op := fmt.Sprintf("create key for %q", nk.MemberName)
	if err := checkName(op, "member name", nk.MemberName); err != nil {
		return store.Key{}, err
	}
	if nk.Kind != store.KindUser && nk.Kind != store.KindAgent {
		return store.Key{}, invalid(op, "kind", "%q is not user or agent", nk.Kind)
	}
	if nk.Role == "" {
		return store.Key{}, invalid(op, "role", "is required")
	}
	if nk.OwnerName != "" && nk.Kind != store.KindAgent {
		return store.Key{}, invalid(op, "owner", "is only for agent keys")
	}
	if nk.OwnerName == "" && nk.Kind == store.KindAgent {
		return store.Key{}, invalid(op, "owner", "is required for an agent key: name the user member it acts for")
	}
	if nk.Email != "" && nk.Kind != store.KindUser {
		return store.Key{}, invalid(op, "email", "is only for user keys")
	}
	email, err := normalEmail(op, nk.Email)
	if err != nil {
		return store.Key{}, err
	}
	if nk.Name == "" {
		nk.Name = nk.MemberName
	}
	if err := checkName(op, "key name", nk.Name); err != nil {
		return store.Key{}, err
	}
	if !keyPrefix.MatchString(nk.Prefix) {
		return store.Key{}, invalid(op, "prefix", "must be 1-64 letters, digits, '_' or '-'")
	}
	if len(nk.Hash) == 0 {
		return store.Key{}, invalid(op, "hash", "is required")
	}
	now := utc(time.Now())
	if nk.ExpiresAt != nil && !nk.ExpiresAt.After(now) {
		return store.Key{}, invalid(op, "expires_at", "is in the past")
	}

	var k store.Key
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		if err := checkWorkspace(ctx, tx, op, nk.WorkspaceID); err != nil {
			return err
		}
		if err := checkRole(ctx, tx, op, nk.WorkspaceID, nk.Role); err != nil {
			return err
		}
		var ownerID sql.NullString
		if nk.OwnerName != "" {
			var id, kind string
			err := tx.QueryRowContext(ctx, `SELECT id, kind FROM members WHERE workspace_id = ? AND name = ?`,
				nk.WorkspaceID, nk.OwnerName).Scan(&id, &kind)
			if errors.Is(err, sql.ErrNoRows) || err == nil && kind != store.KindUser {
				return invalid(op, "owner", "%q is not a user member of the workspace", nk.OwnerName)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			ownerID = sql.NullString{String: id, Valid: true}
		}

		var memberID, kind, role, owner, memberEmail string
		err := tx.QueryRowContext(ctx, `SELECT id, kind, role, COALESCE(owner_member_id, ''), COALESCE(email, '') FROM members
			WHERE workspace_id = ? AND name = ?`, nk.WorkspaceID, nk.MemberName).Scan(&memberID, &kind, &role, &owner, &memberEmail)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if nk.Kind == store.KindUser && email == "" {
				return invalid(op, "email", "is required for a new user member: it makes one person one member")
			}
			if err := checkEmailFree(ctx, tx, op, nk.WorkspaceID, email); err != nil {
				return err
			}
			if memberID, err = newID(prefixMember); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO members (id, workspace_id, name, kind, role, owner_member_id, email, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, memberID, nk.WorkspaceID, nk.MemberName, nk.Kind, nk.Role, ownerID,
				sql.NullString{String: email, Valid: email != ""}, now); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			if err := bump(ctx, tx, authCounter); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("%s: %w", op, err)
		case kind != nk.Kind:
			return fmt.Errorf("%s: member is a %s, not a %s: %w", op, kind, nk.Kind, store.ErrConflict)
		case role != nk.Role:
			return fmt.Errorf("%s: member has role %q, not %q: %w", op, role, nk.Role, store.ErrConflict)
		case ownerID.Valid && owner != "" && owner != ownerID.String:
			return fmt.Errorf("%s: agent acts for another member than %q: %w", op, nk.OwnerName, store.ErrConflict)
		case email != "" && memberEmail != "" && memberEmail != email:
			return fmt.Errorf("%s: member has another email: %w", op, store.ErrConflict)
		case ownerID.Valid && owner == "":
			// An agent from before owners were required: its calls are
			// denied until it has one, so naming one now is how it is fixed.
			if _, err := tx.ExecContext(ctx, `UPDATE members SET owner_member_id = ? WHERE id = ?`, ownerID, memberID); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			if err := bump(ctx, tx, authCounter); err != nil {
				return err
			}
		case email != "" && memberEmail == "":
			if err := checkEmailFree(ctx, tx, op, nk.WorkspaceID, email); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE members SET email = ? WHERE id = ?`, email, memberID); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
		}

		id, err := newID(prefixKey)
		if err != nil {
			return err
		}
		if err := insertKey(ctx, tx, op, id, nk.WorkspaceID, memberID, nk.Name, nk.Kind, nk.Prefix, nk.Hash, now, nk.ExpiresAt); err != nil {
			return err
		}
		store.NoteAuditResource(ctx, id)
		k, err = keyByID(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	})
	if err != nil {
		return store.Key{}, err
	}
	k.Hash = nil
	return k, nil
}

// normalEmail returns a user member's email as stored: a bare address
// (no display name, no surrounding spaces, at most 254 bytes) lowercased,
// so that one address in two cases is one person. Empty stays empty.
func normalEmail(op, email string) (string, error) {
	if email == "" {
		return "", nil
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Name != "" || addr.Address != email || len(email) > 254 {
		return "", invalid(op, "email", "%q is not a plain email address such as ada@example.com", email)
	}
	return strings.ToLower(email), nil
}

// checkEmailFree returns ErrConflict when another member of the workspace
// has the (normalized) email. The unique index holds it too; this check
// gives the reason.
func checkEmailFree(ctx context.Context, tx *sql.Tx, op, workspaceID, email string) error {
	if email == "" {
		return nil
	}
	var name string
	err := tx.QueryRowContext(ctx, `SELECT name FROM members WHERE workspace_id = ? AND email = ? COLLATE NOCASE`,
		workspaceID, email).Scan(&name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: email %q is already member %q's: one person is one member: %w", op, email, name, store.ErrConflict)
}

// insertKey inserts one key row; a taken prefix is ErrConflict.
func insertKey(ctx context.Context, tx *sql.Tx, op, id, workspaceID, memberID, name, kind, prefix string, hash []byte, now time.Time, expires *time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, workspace_id, member_id, name, kind, prefix, hash, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, workspaceID, memberID, name, kind, prefix, hash, now, nullTime(expires))
	if isUnique(err) {
		return fmt.Errorf("%s: prefix %q is already in use: %w", op, prefix, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// keyByID reads one key with its hash.
func keyByID(ctx context.Context, q querier, id string) (store.Key, error) {
	return scanKey(q.QueryRowContext(ctx, `SELECT `+keyColumns+` WHERE k.id = ?`, id))
}

// KeyByPrefix returns the key with this prefix, with its hash, whether it is
// active, revoked or expired. It returns ErrNotFound for an unknown prefix.
func (d *DB) KeyByPrefix(ctx context.Context, prefix string) (store.Key, error) {
	k, err := scanKey(d.stmts.keyByPrefix.QueryRowContext(ctx, prefix))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Key{}, fmt.Errorf("key with prefix %q: %w", prefix, store.ErrNotFound)
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("key with prefix %q: %w", prefix, err)
	}
	return k, nil
}

// Principal returns the principal behind an active key: the key, its
// member, the member's groups and the auth version, read together so they
// are consistent, and kept in memory until the auth version moves (every
// role, member, group, filter or key change bumps it, in any process), so
// a call whose key and member are unchanged reads only the version row. It
// returns ErrNotFound for a key that is unknown, revoked or expired at now.
// It notes the key's use for last_used_at at most once a minute, in the
// background: the call never waits on a write and never fails because of
// one.
func (d *DB) Principal(ctx context.Context, keyID string, now time.Time) (store.Principal, error) {
	v, err := d.versions(ctx)
	if err != nil {
		return store.Principal{}, fmt.Errorf("principal for key %q: %w", keyID, err)
	}
	c, ok := d.cache.principals.get(keyID, v.auth)
	if !ok {
		if c, err = d.loadPrincipal(ctx, keyID); err != nil {
			return store.Principal{}, err
		}
		d.cache.principals.put(keyID, c.p.RBACVersion, c)
	}
	return d.use(c, now)
}

// touch is one key use to record.
type touch struct {
	keyID string
	at    time.Time
}

// noteUse queues a last-use record unless one was written, or queued by
// this process, less than touchInterval before at. A full queue drops the
// record; a later call retries.
func (d *DB) noteUse(keyID string, last *time.Time, at time.Time) {
	if last != nil && at.Sub(*last) < touchInterval {
		return
	}
	d.mu.Lock()
	if prev, ok := d.touched[keyID]; ok && at.Sub(prev) < touchInterval {
		d.mu.Unlock()
		return
	}
	if len(d.touched) >= 10000 {
		for id, t := range d.touched {
			if at.Sub(t) >= touchInterval {
				delete(d.touched, id)
			}
		}
	}
	d.touched[keyID] = at
	d.mu.Unlock()
	select {
	case d.touches <- touch{keyID: keyID, at: at}:
	default:
	}
}

// recordUses writes queued key uses until Close, then writes what is left.
func (d *DB) recordUses() {
	defer d.wg.Done()
	for {
		select {
		case t := <-d.touches:
			d.recordUse(t)
		case <-d.done:
			for {
				select {
				case t := <-d.touches:
					d.recordUse(t)
				default:
					return
				}
			}
		}
	}
}

// recordUse sets a key's last_used_at, never moving it backwards. Failures
// are dropped: last use is informational and the next use retries.
func (d *DB) recordUse(t touch) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = d.write.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ?
		WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`, t.at, t.keyID, t.at)
}

// ListKeys lists a workspace's keys, newest first, without their hashes.
func (d *DB) ListKeys(ctx context.Context, workspaceID string) ([]store.Key, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+keyColumns+` WHERE k.workspace_id = ?
		ORDER BY k.created_at DESC, k.id DESC`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []store.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		k.Hash = nil
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// findKey reads a workspace's key by id or prefix, with its hash.
func findKey(ctx context.Context, q querier, op, workspaceID, idOrPrefix string) (store.Key, error) {
	k, err := scanKey(q.QueryRowContext(ctx, `SELECT `+keyColumns+`
		WHERE k.workspace_id = ? AND (k.id = ? OR k.prefix = ?)
		ORDER BY k.id = ? DESC LIMIT 1`, workspaceID, idOrPrefix, idOrPrefix, idOrPrefix))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Key{}, fmt.Errorf("%s %q: %w", op, idOrPrefix, store.ErrNotFound)
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("%s %q: %w", op, idOrPrefix, err)
	}
	return k, nil
}

// RevokeKey revokes a workspace's key, found by id or prefix, as of now. It
// returns ErrNotFound for a key not in the workspace and ErrConflict for a
// key already revoked. The returned key carries no hash.
func (d *DB) RevokeKey(ctx context.Context, workspaceID, idOrPrefix string, now time.Time) (store.Key, error) {
	const op = "revoke key"
	var k store.Key
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if k, err = findKey(ctx, tx, op, workspaceID, idOrPrefix); err != nil {
			return err
		}
		if k.RevokedAt != nil {
			return fmt.Errorf("%s %q: already revoked: %w", op, idOrPrefix, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ?`, utc(now), k.ID); err != nil {
			return fmt.Errorf("%s %q: %w", op, idOrPrefix, err)
		}
		// Principals are cached under the auth version: the bump ends the
		// key's on the next call, in every process.
		if err := bump(ctx, tx, authCounter); err != nil {
			return err
		}
		store.NoteAuditResource(ctx, k.ID)
		at := utc(now)
		k.RevokedAt = &at
		return nil
	})
	if err != nil {
		return store.Key{}, err
	}
	k.Hash = nil
	return k, nil
}

// ReplaceKey rotates a workspace's key, found by id or prefix: in one
// transaction it revokes the old key as of now and creates its successor
// with the new prefix and hash, for the same member, with the same name,
// kind and expiry (rotation replaces a secret; it does not extend a key's
// life). It returns ErrNotFound for a key not in the workspace, ErrConflict
// for a revoked or expired key or a taken prefix, and ErrInvalid for a bad
// prefix or an empty hash. The returned key carries no hash.
func (d *DB) ReplaceKey(ctx context.Context, workspaceID, idOrPrefix string, prefix string, hash []byte, now time.Time) (store.Key, error) {
	const op = "rotate key"
	if !keyPrefix.MatchString(prefix) {
		return store.Key{}, invalid(op, "prefix", "must be 1-64 letters, digits, '_' or '-'")
	}
	if len(hash) == 0 {
		return store.Key{}, invalid(op, "hash", "is required")
	}
	now = utc(now)
	var k store.Key
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		old, err := findKey(ctx, tx, op, workspaceID, idOrPrefix)
		if err != nil {
			return err
		}
		switch {
		case old.RevokedAt != nil:
			return fmt.Errorf("%s %q: key is revoked: %w", op, idOrPrefix, store.ErrConflict)
		case !old.Active(now):
			return fmt.Errorf("%s %q: key expired: %w", op, idOrPrefix, store.ErrConflict)
		}
		id, err := newID(prefixKey)
		if err != nil {
			return err
		}
		if err := insertKey(ctx, tx, op, id, workspaceID, old.MemberID, old.Name, old.Kind, prefix, hash, now, old.ExpiresAt); err != nil {
			return err
		}
		store.NoteAuditResource(ctx, id)
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ?, replaced_by = ? WHERE id = ?`, now, id, old.ID); err != nil {
			return fmt.Errorf("%s %q: %w", op, idOrPrefix, err)
		}
		if err := bump(ctx, tx, authCounter); err != nil {
			return err
		}
		if k, err = keyByID(ctx, tx, id); err != nil {
			return fmt.Errorf("%s %q: %w", op, idOrPrefix, err)
		}
		return nil
	})
	if err != nil {
		return store.Key{}, err
	}
	k.Hash = nil
	return k, nil
}
