package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/store"
)

const approvalColumns = `id, workspace_id, state, tool, args, args_hash, requester_id, requester_name, requester_kind,
	requester_owner_id, key_prefix, source, policy_version, rules, reason, facts, created_at, expires_at,
	decider_id, decider_name, decided_at, comment, outcome, updated_at, done_at, pins`

// CreateApproval stores a new pending approval with its pins. It checks
// that ArgsHash is the SHA-256 of Args, so what a human approves is what
// runs, and that every pin names an object and its version.
func (d *DB) CreateApproval(ctx context.Context, a store.Approval) (store.Approval, error) {
	const op = "create approval"
	switch {
	case a.Tool == "":
		return store.Approval{}, invalid(op, "tool", "is required")
	case !json.Valid(a.Args):
		return store.Approval{}, invalid(op, "args", "is not JSON")
	case a.RequesterID == "" || a.KeyPrefix == "":
		return store.Approval{}, invalid(op, "requester", "is required")
	case a.RequesterKind != store.KindUser && a.RequesterKind != store.KindAgent:
		return store.Approval{}, invalid(op, "requester_kind", "must be user or agent")
	case a.ExpiresAt.IsZero():
		return store.Approval{}, invalid(op, "expires_at", "is required")
	}
	sum := sha256.Sum256(a.Args)
	if a.ArgsHash != hex.EncodeToString(sum[:]) {
		return store.Approval{}, invalid(op, "args_hash", "is not the SHA-256 of args")
	}
	if err := ensureID(&a.ID, "apr_"); err != nil {
		return store.Approval{}, err
	}
	now := time.Now().UTC()
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now
	}
	a.State, a.UpdatedAt = store.ApprovalPending, a.CreatedAt
	if !a.ExpiresAt.After(a.CreatedAt) {
		return store.Approval{}, invalid(op, "expires_at", "must be after created_at")
	}
	rules, err := json.Marshal(nonNil(a.Rules))
	if err != nil {
		return store.Approval{}, fmt.Errorf("%s: %w", op, err)
	}
	facts, err := json.Marshal(a.Facts)
	if err != nil || a.Facts == nil {
		facts = []byte("{}")
	}
	if a.Pins == nil {
		a.Pins = []store.ApprovalPin{}
	}
	for _, p := range a.Pins {
		if p.Type == "" || p.ID == "" || p.Version < 1 {
			return store.Approval{}, invalid(op, "pins", "need a type, an id and a version")
		}
	}
	pins, err := json.Marshal(a.Pins)
	if err != nil {
		return store.Approval{}, fmt.Errorf("%s: %w", op, err)
	}
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		if err := checkWorkspace(ctx, tx, op, a.WorkspaceID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO approvals (`+approvalColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', NULL, '', '', ?, NULL, ?)`,
			a.ID, a.WorkspaceID, a.State, a.Tool, string(a.Args), a.ArgsHash, a.RequesterID, a.RequesterName, a.RequesterKind,
			a.RequesterOwnerID, a.KeyPrefix, a.Source, a.PolicyVersion, string(rules), a.Reason, string(facts),
			a.CreatedAt.UTC(), a.ExpiresAt.UTC(), a.UpdatedAt.UTC(), string(pins))
		return created(op, a.ID, err)
	})
	if err != nil {
		return store.Approval{}, err
	}
	return a, nil
}

// GetApproval returns one approval of the workspace.
func (d *DB) GetApproval(ctx context.Context, workspaceID, id string) (store.Approval, error) {
	row := d.read.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE workspace_id = ? AND id = ?`, workspaceID, id)
	a, err := scanApproval(row)
	if err != nil {
		return store.Approval{}, notFound("get approval", id, err)
	}
	return a, nil
}

// ListApprovals returns approvals, newest first (default 50, at most 1000).
func (d *DB) ListApprovals(ctx context.Context, f store.ApprovalFilter) ([]store.Approval, error) {
	where := []string{"workspace_id = ?"}
	args := []any{f.WorkspaceID}
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, f.State)
	}
	if f.RequesterID != "" {
		where, args = append(where, "requester_id = ?"), append(args, f.RequesterID)
	}
	if f.Tool != "" {
		where, args = append(where, "tool = ?"), append(args, f.Tool)
	}
	if !f.CreatedBefore.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, f.CreatedBefore.UTC())
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	rows, err := d.read.QueryContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE `+strings.Join(where, " AND ")+
		` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	defer rows.Close()
	var out []store.Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, fmt.Errorf("list approvals: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// TransitionApproval moves an approval from c.From to c.To with a
// compare-and-set on its state, so of two concurrent movers exactly one
// wins; the loser gets ErrConflict.
func (d *DB) TransitionApproval(ctx context.Context, workspaceID, id string, c store.ApprovalChange) (store.Approval, error) {
	const op = "transition approval"
	if err := c.Check(); err != nil {
		return store.Approval{}, fmt.Errorf("%s %s: %w", op, id, err)
	}
	at := c.At.UTC()
	if c.At.IsZero() {
		at = time.Now().UTC()
	}
	set := []string{"state = ?", "updated_at = ?"}
	args := []any{c.To, at}
	switch c.To {
	case store.ApprovalApproved, store.ApprovalRejected:
		set = append(set, "decider_id = ?", "decider_name = ?", "decided_at = ?", "comment = ?")
		args = append(args, c.DeciderID, c.DeciderName, at, c.Comment)
	case store.ApprovalCancelled:
		set = append(set, "comment = ?", "done_at = ?")
		args = append(args, c.Comment, at)
	}
	switch c.To {
	case store.ApprovalSucceeded, store.ApprovalFailed, store.ApprovalExpired, store.ApprovalRejected:
		set = append(set, "outcome = ?", "done_at = ?")
		args = append(args, c.Outcome, at)
	}
	args = append(args, workspaceID, id, c.From)
	var a store.Approval
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE approvals SET `+strings.Join(set, ", ")+` WHERE workspace_id = ? AND id = ? AND state = ?`, args...)
		if err != nil {
			return fmt.Errorf("%s %s: %w", op, id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var state string
			err := tx.QueryRowContext(ctx, `SELECT state FROM approvals WHERE workspace_id = ? AND id = ?`, workspaceID, id).Scan(&state)
			if err != nil {
				return notFound(op, id, err)
			}
			return fmt.Errorf("%s %s: it is %s, not %s: %w", op, id, state, c.From, store.ErrConflict)
		}
		a, err = scanApproval(tx.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = ?`, id))
		return err
	})
	if err != nil {
		return store.Approval{}, err
	}
	return a, nil
}

func scanApproval(s interface{ Scan(...any) error }) (store.Approval, error) {
	var a store.Approval
	var args, rules, facts, pins string
	var decided, done sql.NullTime
	err := s.Scan(&a.ID, &a.WorkspaceID, &a.State, &a.Tool, &args, &a.ArgsHash, &a.RequesterID, &a.RequesterName, &a.RequesterKind,
		&a.RequesterOwnerID, &a.KeyPrefix, &a.Source, &a.PolicyVersion, &rules, &a.Reason, &facts, &a.CreatedAt, &a.ExpiresAt,
		&a.DeciderID, &a.DeciderName, &decided, &a.Comment, &a.Outcome, &a.UpdatedAt, &done, &pins)
	if err != nil {
		return store.Approval{}, err
	}
	a.Args = json.RawMessage(args)
	if err := json.Unmarshal([]byte(rules), &a.Rules); err != nil {
		return store.Approval{}, fmt.Errorf("approval %s rules: %w", a.ID, err)
	}
	if err := json.Unmarshal([]byte(facts), &a.Facts); err != nil {
		return store.Approval{}, fmt.Errorf("approval %s facts: %w", a.ID, err)
	}
	if err := json.Unmarshal([]byte(pins), &a.Pins); err != nil {
		return store.Approval{}, fmt.Errorf("approval %s pins: %w", a.ID, err)
	}
	a.DecidedAt, a.DoneAt = timePtr(decided), timePtr(done)
	return a, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
