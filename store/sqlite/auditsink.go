package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// Compile-time check that AuditSink is a shipping target.
var _ store.AuditSink = (*AuditSink)(nil)

// AuditSink is the embedded warehouse's audit schema as a shipping target
// (store.AuditSink): the file cdp_audit.db in the warehouse directory,
// written through a connection of its own. The warehouse's query
// connections keep attaching the file read-only; only this connection
// writes, and only to that file (nothing else is attached to it).
//
// Every batch opens a fresh connection (none is kept idle), so a file that
// was moved, replaced or made unreadable while the server runs is noticed
// at the next batch instead of being written through a stale handle; the
// cost, an open per batch, is small next to the batch's fsync. The file is
// in WAL mode, so the warehouse's readers never wait for a batch, and
// synchronous=FULL, so a batch acknowledged is on disk. An AuditSink is
// safe for concurrent use.
type AuditSink struct {
	path string
	db   *sql.DB
}

// warehouseAuditColumns are the columns of cdp_audit.audit_events and
// cdp_audit.ai_operations: the event's fields under their JSON names, plus
// when the row was shipped. at is UTC text with nine fraction digits, so it
// sorts as text and SQLite's date functions read it.
const warehouseAuditColumns = `seq, id, at, workspace, actor_type, actor_id, actor_name, key_prefix, source, action,
	tool, resource_type, resource_id, decision, rules, reason, approval_id, args, result, latency_ms, client,
	session_id, request_id, prev_hash, hash`

// warehouseTimeFormat is how at is stored in the warehouse copy.
const warehouseTimeFormat = "2006-01-02T15:04:05.000000000Z"

// OpenAuditSink returns the audit sink of the embedded warehouse in dir.
// It touches no file: the first batch creates cdp_audit.db and its tables
// when missing, and an unavailable file fails batches, not this call. The
// caller must Close the sink.
func OpenAuditSink(dir string) (*AuditSink, error) {
	if dir == "" {
		return nil, fmt.Errorf("open audit sink: directory is empty: %w", store.ErrInvalid)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open audit sink: %w", err)
	}
	path := filepath.Join(abs, AuditFile)
	q := url.Values{}
	q.Add("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	db, err := sql.Open("sqlite", fileURI(path, q))
	if err != nil {
		return nil, fmt.Errorf("open audit sink %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(0)
	return &AuditSink{path: path, db: db}, nil
}

// Path returns the path of cdp_audit.db.
func (s *AuditSink) Path() string { return s.path }

// Close releases the sink.
func (s *AuditSink) Close() error { return s.db.Close() }

// EnsureAuditTables creates cdp_audit.audit_events and
// cdp_audit.ai_operations with their indexes when missing.
func (s *AuditSink) EnsureAuditTables(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ensure audit tables in %s: %w", s.path, err)
	}
	defer tx.Rollback()
	if err := ensureAuditTables(ctx, tx); err != nil {
		return fmt.Errorf("ensure audit tables in %s: %w", s.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ensure audit tables in %s: %w", s.path, err)
	}
	return nil
}

func ensureAuditTables(ctx context.Context, tx *sql.Tx) error {
	for _, table := range []string{store.AuditTableEvents, store.AuditTableAI} {
		// Table names are constants, never input.
		stmts := []string{
			`CREATE TABLE IF NOT EXISTS ` + table + ` (
				id            TEXT PRIMARY KEY,
				seq           INTEGER NOT NULL,
				at            TEXT NOT NULL,
				workspace     TEXT NOT NULL,
				actor_type    TEXT NOT NULL,
				actor_id      TEXT NOT NULL,
				actor_name    TEXT NOT NULL,
				key_prefix    TEXT NOT NULL,
				source        TEXT NOT NULL,
				action        TEXT NOT NULL,
				tool          TEXT NOT NULL,
				resource_type TEXT NOT NULL,
				resource_id   TEXT NOT NULL,
				decision      TEXT NOT NULL,
				rules         TEXT,
				reason        TEXT NOT NULL,
				approval_id   TEXT NOT NULL,
				args          TEXT,
				result        TEXT NOT NULL,
				latency_ms    REAL NOT NULL,
				client        TEXT NOT NULL,
				session_id    TEXT NOT NULL,
				request_id    TEXT NOT NULL,
				prev_hash     TEXT NOT NULL,
				hash          TEXT NOT NULL,
				shipped_at    TEXT NOT NULL
			)`,
			`CREATE UNIQUE INDEX IF NOT EXISTS ` + table + `_seq ON ` + table + ` (seq)`,
			`CREATE INDEX IF NOT EXISTS ` + table + `_at ON ` + table + ` (at)`,
			`CREATE INDEX IF NOT EXISTS ` + table + `_workspace_at ON ` + table + ` (workspace, at)`,
		}
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteAuditEvents writes a batch in one transaction: every event to
// audit_events, AI events also to ai_operations, creating the tables when
// missing. An event whose id is there already is skipped (INSERT OR
// IGNORE), so a batch shipped twice leaves one copy.
func (s *AuditSink) WriteAuditEvents(ctx context.Context, events []store.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write audit events to %s: %w", s.path, err)
	}
	defer tx.Rollback()
	if err := ensureAuditTables(ctx, tx); err != nil {
		return fmt.Errorf("write audit events to %s: %w", s.path, err)
	}
	shipped := time.Now().UTC().Format(warehouseTimeFormat)
	stmts := make(map[string]*sql.Stmt, 2)
	for _, table := range []string{store.AuditTableEvents, store.AuditTableAI} {
		st, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO `+table+` (`+warehouseAuditColumns+`, shipped_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("write audit events to %s: %w", s.path, err)
		}
		defer st.Close()
		stmts[table] = st
	}
	for _, e := range events {
		vals, err := warehouseValues(e)
		if err != nil {
			return fmt.Errorf("write audit event %s: %w", e.ID, err)
		}
		vals = append(vals, shipped)
		if _, err := stmts[store.AuditTableEvents].ExecContext(ctx, vals...); err != nil {
			return fmt.Errorf("write audit event %s to %s: %w", e.ID, s.path, err)
		}
		if e.Source == store.SourceAI {
			if _, err := stmts[store.AuditTableAI].ExecContext(ctx, vals...); err != nil {
				return fmt.Errorf("write audit event %s to %s: %w", e.ID, s.path, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write audit events to %s: commit: %w", s.path, err)
	}
	return nil
}

// warehouseValues returns an event's column values in warehouseAuditColumns
// order: rules and args as their canonical JSON text, so the copy hashes
// exactly as the store's event.
func warehouseValues(e store.AuditEvent) ([]any, error) {
	var rules, args sql.NullString
	if len(e.Rules) > 0 {
		b, err := store.CanonicalJSON(e.Rules)
		if err != nil {
			return nil, err
		}
		rules = sql.NullString{String: string(b), Valid: true}
	}
	if e.Args != nil {
		b, err := store.CanonicalJSON(e.Args)
		if err != nil {
			return nil, err
		}
		args = sql.NullString{String: string(b), Valid: true}
	}
	return []any{e.Seq, e.ID, e.At.UTC().Format(warehouseTimeFormat), e.WorkspaceID, e.ActorType, e.ActorID, e.ActorName,
		e.KeyPrefix, e.Source, e.Action, e.Tool, e.ResourceType, e.ResourceID, e.Decision, rules, e.Reason, e.ApprovalID,
		args, e.Result, e.LatencyMS, e.Client, e.SessionID, e.RequestID, e.PrevHash, e.Hash}, nil
}

// ReadAuditEvents reads events back from table (store.AuditTableEvents or
// store.AuditTableAI): with f.Oldest in seq order after f.AfterSeq,
// otherwise newest first; f.Hash selects one event. A missing table or file
// holds no events (and is not created). Other filter fields are ignored.
func (s *AuditSink) ReadAuditEvents(ctx context.Context, table string, f store.AuditFilter) ([]store.AuditEvent, error) {
	if table != store.AuditTableEvents && table != store.AuditTableAI {
		return nil, fmt.Errorf("read audit events: unknown table %q: %w", table, store.ErrInvalid)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	limit = min(limit, maxAuditLimit)
	// Reading never creates the file.
	if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil {
		return nil, fmt.Errorf("read audit events from %s: %w", s.path, err)
	}
	if n == 0 {
		return nil, nil
	}
	var where []string
	var args []any
	if f.Hash != "" {
		where, args = append(where, "hash = ?"), append(args, f.Hash)
	}
	if f.Oldest || f.AfterSeq > 0 {
		where, args = append(where, "seq > ?"), append(args, f.AfterSeq)
	}
	q := `SELECT ` + warehouseAuditColumns + ` FROM ` + table
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	if f.Oldest {
		q += ` ORDER BY seq`
	} else {
		q += ` ORDER BY seq DESC`
	}
	q += ` LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read audit events from %s: %w", s.path, err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var at string
		var rules, args sql.NullString
		if err := rows.Scan(&e.Seq, &e.ID, &at, &e.WorkspaceID, &e.ActorType, &e.ActorID, &e.ActorName, &e.KeyPrefix,
			&e.Source, &e.Action, &e.Tool, &e.ResourceType, &e.ResourceID, &e.Decision, &rules, &e.Reason,
			&e.ApprovalID, &args, &e.Result, &e.LatencyMS, &e.Client, &e.SessionID, &e.RequestID, &e.PrevHash,
			&e.Hash); err != nil {
			return nil, fmt.Errorf("read audit events from %s: %w", s.path, err)
		}
		if e.At, err = time.Parse(time.RFC3339Nano, at); err != nil {
			return nil, fmt.Errorf("read audit event %s: at %q: %w", e.ID, at, err)
		}
		if rules.Valid {
			if err := store.DecodeJSON([]byte(rules.String), &e.Rules); err != nil {
				return nil, fmt.Errorf("read audit event %s: rules: %w", e.ID, err)
			}
		}
		if args.Valid {
			if err := store.DecodeJSON([]byte(args.String), &e.Args); err != nil {
				return nil, fmt.Errorf("read audit event %s: args: %w", e.ID, err)
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit events from %s: %w", s.path, err)
	}
	return out, nil
}
