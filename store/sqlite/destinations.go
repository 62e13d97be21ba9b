package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// Destinations as people manage them (store.Destinations). The sealed
// credential lives in destinations.credentials with the id of the master
// key that sealed it in credentials_key_id (0001_init.sql); the store never
// decrypts it.

var _ store.Destinations = (*DB)(nil)

// sealedValue is a credential's column value: NULL for none.
func sealedValue(c store.Credential) any {
	if len(c.Sealed) == 0 {
		return nil
	}
	return c.Sealed
}

// nullString is s as a column value: NULL when empty.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// UpdateDestination replaces a destination's name, category, environment
// and config and, when c is not nil, its credential (a zero Credential
// removes it). See store.Destinations for the errors.
func (d *DB) UpdateDestination(ctx context.Context, dst store.Destination, c *store.Credential) (store.Destination, error) {
	const op = "update destination"
	if err := checkDestination(op, dst, c); err != nil {
		return store.Destination{}, err
	}
	if dst.Config == nil {
		dst.Config = map[string]any{}
	}
	cfg, err := json.Marshal(dst.Config)
	if err != nil {
		return store.Destination{}, invalid(op, "config", "cannot be encoded as JSON")
	}
	var out store.Destination
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanDestination(tx.QueryRowContext(ctx, `SELECT `+destinationColumns+` WHERE workspace_id = ? AND id = ?`,
			dst.WorkspaceID, dst.ID))
		if err != nil {
			return notFound(op, dst.ID, err)
		}
		if cur.Type != dst.Type {
			return invalid(op, "type", "cannot change from %s to %s: create a new destination", cur.Type, dst.Type)
		}
		now := time.Now().UTC()
		if c == nil {
			_, err = tx.ExecContext(ctx, `UPDATE destinations SET name = ?, category = ?, environment = ?, config = ?,
				updated_at = ? WHERE workspace_id = ? AND id = ?`,
				dst.Name, dst.Category, dst.Environment, string(cfg), now, dst.WorkspaceID, dst.ID)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE destinations SET name = ?, category = ?, environment = ?, config = ?,
				credentials = ?, credentials_key_id = ?, updated_at = ? WHERE workspace_id = ? AND id = ?`,
				dst.Name, dst.Category, dst.Environment, string(cfg), sealedValue(*c), nullString(c.KeyID), now,
				dst.WorkspaceID, dst.ID)
		}
		if err := created(op, dst.Name, err); err != nil {
			return err
		}
		if out, err = scanDestination(tx.QueryRowContext(ctx, `SELECT `+destinationColumns+` WHERE workspace_id = ? AND id = ?`,
			dst.WorkspaceID, dst.ID)); err != nil {
			return fmt.Errorf("%s %s: %w", op, dst.ID, err)
		}
		return bump(ctx, tx, catalogCounter)
	})
	if err != nil {
		return store.Destination{}, err
	}
	return out, nil
}

// DeleteDestination deletes a destination no sync sends to.
func (d *DB) DeleteDestination(ctx context.Context, workspaceID, id string) error {
	const op = "delete destination"
	return d.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanDestination(tx.QueryRowContext(ctx, `SELECT `+destinationColumns+` WHERE workspace_id = ? AND id = ?`,
			workspaceID, id))
		if err != nil {
			return notFound(op, id, err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT id FROM syncs WHERE workspace_id = ? AND destination_id = ? ORDER BY id`,
			workspaceID, id)
		if err != nil {
			return fmt.Errorf("%s %s: %w", op, id, err)
		}
		var deps []store.Dependent
		for rows.Next() {
			var sid string
			if err := rows.Scan(&sid); err != nil {
				rows.Close()
				return fmt.Errorf("%s %s: %w", op, id, err)
			}
			deps = append(deps, store.Dependent{Type: "sync", ID: sid, Name: sid, Why: "sync to the destination"})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s %s: %w", op, id, err)
		}
		if len(deps) > 0 {
			return &store.InUseError{Object: "destination " + cur.Name, Dependents: deps}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM destinations WHERE workspace_id = ? AND id = ?`, workspaceID, id); err != nil {
			return fmt.Errorf("%s %s: %w", op, id, err)
		}
		return bump(ctx, tx, catalogCounter)
	})
}

// DestinationCredential returns a destination's sealed credential.
func (d *DB) DestinationCredential(ctx context.Context, workspaceID, id string) (store.Credential, error) {
	var c store.Credential
	var keyID sql.NullString
	err := d.read.QueryRowContext(ctx, `SELECT credentials, credentials_key_id FROM destinations
		WHERE workspace_id = ? AND id = ?`, workspaceID, id).Scan(&c.Sealed, &keyID)
	if err != nil {
		return store.Credential{}, notFound("destination credential", id, err)
	}
	if len(c.Sealed) == 0 {
		return store.Credential{}, fmt.Errorf("destination credential %q: none stored: %w", id, store.ErrNotFound)
	}
	c.KeyID = keyID.String
	return c, nil
}

// ResealCredentials replaces every stored credential by reseal's answer in
// one transaction.
func (d *DB) ResealCredentials(ctx context.Context, reseal func(workspaceID, id string, c store.Credential) (store.Credential, error)) (int, error) {
	const op = "reseal credentials"
	n := 0
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		type row struct {
			ws, id string
			c      store.Credential
		}
		rows, err := tx.QueryContext(ctx, `SELECT workspace_id, id, credentials, credentials_key_id FROM destinations
			WHERE credentials IS NOT NULL ORDER BY workspace_id, id`)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		var all []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.ws, &r.id, &r.c.Sealed, &r.c.KeyID); err != nil {
				rows.Close()
				return fmt.Errorf("%s: %w", op, err)
			}
			all = append(all, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		now := time.Now().UTC()
		for _, r := range all {
			next, err := reseal(r.ws, r.id, r.c)
			if err != nil {
				return fmt.Errorf("%s: destination %s: %w", op, r.id, err)
			}
			if len(next.Sealed) == 0 || next.KeyID == "" {
				return fmt.Errorf("%s: destination %s: a resealed credential needs a value and a key id: %w", op, r.id, store.ErrInvalid)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE destinations SET credentials = ?, credentials_key_id = ?, updated_at = ?
				WHERE workspace_id = ? AND id = ?`, next.Sealed, next.KeyID, now, r.ws, r.id); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
		}
		n = len(all)
		return bump(ctx, tx, catalogCounter)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
