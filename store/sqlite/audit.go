package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/signalsmith/agent-server/store"
)

// Audit read limits.
const (
	defaultAuditLimit = 50
	maxAuditLimit     = 1000
)

var (
	auditSources   = []string{store.SourceAI, store.SourceAPI, store.SourceUI, store.SourceCLI, store.SourceSystem}
	auditDecisions = []string{store.DecisionAllowed, store.DecisionDenied, store.DecisionApprovalRequired,
		store.DecisionExecuted, store.DecisionFailed}
)

// AppendAudit records one event and returns once it is committed (with
// synchronous=FULL, once it is on disk). It assigns a UUIDv7 id and the
// current UTC time when e has none. It returns ErrInvalid for an unknown
// source or decision, a missing action, a negative or non-finite latency or
// args that cannot be encoded as JSON, and ErrConflict for an id already
// recorded.
func (d *DB) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	const op = "append audit event"
	switch {
	case !oneOf(e.Source, auditSources):
		return invalid(op, "source", "%q is not AI, API, UI, CLI or SYSTEM", e.Source)
	case !oneOf(e.Decision, auditDecisions):
		return invalid(op, "decision", "%q is not allowed, denied, approval_required, executed or failed", e.Decision)
	case e.Action == "":
		return invalid(op, "action", "is required")
	case math.IsNaN(e.LatencyMS) || math.IsInf(e.LatencyMS, 0) || e.LatencyMS < 0:
		return invalid(op, "latency_ms", "must be a finite non-negative number")
	}
	var rules, args sql.NullString
	if len(e.Rules) > 0 {
		b, err := json.Marshal(e.Rules)
		if err != nil {
			return invalid(op, "rules", "cannot be encoded as JSON")
		}
		rules = sql.NullString{String: string(b), Valid: true}
	}
	if e.Args != nil {
		// The encoder's error is left out: it can quote a value.
		b, err := json.Marshal(e.Args)
		if err != nil {
			return invalid(op, "args", "cannot be encoded as JSON")
		}
		args = sql.NullString{String: string(b), Valid: true}
	}
	if e.ID == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("%s: new id: %w", op, err)
		}
		e.ID = u.String()
	}
	if e.At.IsZero() {
		e.At = utc(time.Now())
	}
	_, err := d.write.ExecContext(ctx, `INSERT INTO audit_events (id, at, workspace_id, actor_type, actor_id, actor_name,
		key_prefix, source, action, tool, resource_type, resource_id, decision, rules, reason, approval_id, args, result,
		latency_ms, client, session_id, request_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, utc(e.At), e.WorkspaceID, e.ActorType, e.ActorID, e.ActorName, e.KeyPrefix, e.Source, e.Action, e.Tool,
		e.ResourceType, e.ResourceID, e.Decision, rules, e.Reason, e.ApprovalID, args, e.Result, e.LatencyMS, e.Client,
		e.SessionID, e.RequestID)
	if isUnique(err) {
		return fmt.Errorf("%s %s: already recorded: %w", op, e.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, e.ID, err)
	}
	return nil
}

// Audit returns events newest first: those of f.WorkspaceID, or of every
// workspace (and of calls that had none) when it is empty, which only the
// operator's command line should ask for. f.Limit defaults to 50 and is
// capped at 1000.
func (d *DB) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	limit = min(limit, maxAuditLimit)
	const cols = `SELECT id, at, workspace_id, actor_type, actor_id, actor_name, key_prefix, source, action, tool,
		resource_type, resource_id, decision, rules, reason, approval_id, args, result, latency_ms, client, session_id,
		request_id FROM audit_events`
	var rows *sql.Rows
	var err error
	if f.WorkspaceID != "" {
		rows, err = d.read.QueryContext(ctx, cols+` WHERE workspace_id = ? ORDER BY at DESC, id DESC LIMIT ?`, f.WorkspaceID, limit)
	} else {
		rows, err = d.read.QueryContext(ctx, cols+` ORDER BY at DESC, id DESC LIMIT ?`, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var rules, args sql.NullString
		if err := rows.Scan(&e.ID, &e.At, &e.WorkspaceID, &e.ActorType, &e.ActorID, &e.ActorName, &e.KeyPrefix, &e.Source,
			&e.Action, &e.Tool, &e.ResourceType, &e.ResourceID, &e.Decision, &rules, &e.Reason, &e.ApprovalID, &args,
			&e.Result, &e.LatencyMS, &e.Client, &e.SessionID, &e.RequestID); err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		if rules.Valid {
			if err := json.Unmarshal([]byte(rules.String), &e.Rules); err != nil {
				return nil, fmt.Errorf("read audit event %s: decode rules: %w", e.ID, err)
			}
		}
		if args.Valid {
			if err := json.Unmarshal([]byte(args.String), &e.Args); err != nil {
				return nil, fmt.Errorf("read audit event %s: decode args: %w", e.ID, err)
			}
		}
		e.At = e.At.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}
