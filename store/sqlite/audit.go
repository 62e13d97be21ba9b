package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/signalsmith/agent-server/store"
)

// Audit read limits.
const (
	defaultAuditLimit = 50
	maxAuditLimit     = 1000
)

// maxAuditBatch caps how many concurrent appends share one commit.
const maxAuditBatch = 512

var (
	auditSources   = []string{store.SourceAI, store.SourceAPI, store.SourceUI, store.SourceCLI, store.SourceSystem}
	auditDecisions = []string{store.DecisionAllowed, store.DecisionDenied, store.DecisionApprovalRequired,
		store.DecisionExecuted, store.DecisionFailed}
)

// errClosed is returned for an append after Close.
var errClosed = errors.New("metadata store is closed")

// auditRecord is an event ready to insert: validated, its text fields
// valid UTF-8, its rules and args in their canonical JSON text.
type auditRecord struct {
	e           store.AuditEvent
	rules, args sql.NullString
}

// encodeAudit validates e and prepares its record, assigning a UUIDv7 id
// and the current time when e has none. Every event passes here, so every
// event is redacted and bounded (store.BoundAudit) whoever wrote it.
func encodeAudit(e store.AuditEvent) (auditRecord, error) {
	const op = "append audit event"
	e = store.BoundAudit(e)
	switch {
	case !oneOf(e.Source, auditSources):
		return auditRecord{}, invalid(op, "source", "%q is not AI, API, UI, CLI or SYSTEM", e.Source)
	case !oneOf(e.Decision, auditDecisions):
		return auditRecord{}, invalid(op, "decision", "%q is not allowed, denied, approval_required, executed or failed", e.Decision)
	case e.Action == "":
		return auditRecord{}, invalid(op, "action", "is required")
	case math.IsNaN(e.LatencyMS) || math.IsInf(e.LatencyMS, 0) || e.LatencyMS < 0:
		return auditRecord{}, invalid(op, "latency_ms", "must be a finite non-negative number")
	}
	var r auditRecord
	if len(e.Rules) > 0 {
		b, err := store.CanonicalJSON(e.Rules)
		if err != nil {
			return auditRecord{}, invalid(op, "rules", "cannot be encoded as JSON")
		}
		r.rules = sql.NullString{String: string(b), Valid: true}
	} else {
		e.Rules = nil
	}
	if e.Args != nil {
		// The encoder's error is left out: it can quote a value.
		b, err := store.CanonicalJSON(e.Args)
		if err != nil {
			return auditRecord{}, invalid(op, "args", "cannot be encoded as JSON")
		}
		r.args = sql.NullString{String: string(b), Valid: true}
	}
	if e.ID == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return auditRecord{}, fmt.Errorf("%s: new id: %w", op, err)
		}
		e.ID = u.String()
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = utc(e.At)
	// BoundAudit made every text field valid UTF-8; the canonical JSON of
	// rules and args (stored, and what the hash covers) is too.
	e.Seq, e.PrevHash, e.Hash = 0, "", ""
	r.e = e
	return r, nil
}

const insertAuditSQL = `INSERT INTO audit_events (id, at, workspace_id, actor_type, actor_id, actor_name, key_prefix,
	source, action, tool, resource_type, resource_id, decision, rules, reason, approval_id, args, result, latency_ms,
	client, session_id, request_id, seq, prev_hash, hash)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// chainHead returns the seq and hash of the newest chained event, zero and
// "" for an empty chain. It must run inside the write transaction that
// appends, which holds the database's write lock: that is what keeps two
// writers, also in two processes, from forking the chain.
func (d *DB) chainHead(ctx context.Context, tx *sql.Tx) (int64, string, error) {
	var seq int64
	var hash string
	err := tx.StmtContext(ctx, d.stmts.chainHead).QueryRowContext(ctx).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read audit chain head: %w", err)
	}
	return seq, hash, nil
}

// selectChainHead reads the last event of the chain; insertOutboxSQL
// queues an event for shipping.
const (
	selectChainHead = `SELECT seq, hash FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1`
	insertOutboxSQL = `INSERT INTO audit_outbox (seq) VALUES (?)`
)

// appendChained inserts records at the end of the chain, in order, with
// their outbox rows, inside tx. It fills in each record's seq, prev_hash
// and hash.
func (d *DB) appendChained(ctx context.Context, tx *sql.Tx, recs []*auditRecord) error {
	seq, prev, err := d.chainHead(ctx, tx)
	if err != nil {
		return err
	}
	ins := tx.StmtContext(ctx, d.stmts.insertAudit)
	out := tx.StmtContext(ctx, d.stmts.insertOutbox)
	for _, r := range recs {
		seq++
		e := &r.e
		e.Seq, e.PrevHash = seq, prev
		if e.Hash, err = store.AuditHash(*e); err != nil {
			return invalid("append audit event", "args", "cannot be encoded as JSON")
		}
		_, err := ins.ExecContext(ctx, e.ID, e.At, e.WorkspaceID, e.ActorType, e.ActorID, e.ActorName, e.KeyPrefix,
			e.Source, e.Action, e.Tool, e.ResourceType, e.ResourceID, e.Decision, r.rules, e.Reason, e.ApprovalID, r.args,
			e.Result, e.LatencyMS, e.Client, e.SessionID, e.RequestID, e.Seq, e.PrevHash, e.Hash)
		if isUnique(err) {
			return fmt.Errorf("append audit event %s: already recorded: %w", e.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("append audit event %s: %w", e.ID, err)
		}
		if _, err := out.ExecContext(ctx, e.Seq); err != nil {
			return fmt.Errorf("queue audit event %s for shipping: %w", e.ID, err)
		}
		prev = e.Hash
	}
	return nil
}

// auditRequest is one AppendAudit waiting for its commit.
type auditRequest struct {
	rec  auditRecord
	done chan error
}

// AppendAudit records one event and returns once it is committed (with
// synchronous=FULL, once it is on disk), chained and in the outbox. It
// assigns a UUIDv7 id and the current UTC time when e has none; a given
// Seq, PrevHash or Hash is ignored. It returns ErrInvalid for an unknown
// source or decision, a missing action, a negative or non-finite latency or
// args that cannot be encoded as JSON, and ErrConflict for an id already
// recorded.
//
// Group commit: appends go to one writer goroutine, which takes every
// append waiting when it starts a transaction (up to maxAuditBatch) and
// commits them together, then acknowledges each. Under load many calls
// share one fsync; a lone call waits for no one.
func (d *DB) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	rec, err := encodeAudit(e)
	if err != nil {
		return err
	}
	req := &auditRequest{rec: rec, done: make(chan error, 1)}
	select {
	case d.audits <- req:
	case <-d.done:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once taken, the outcome is waited for whatever ctx does: the caller
	// must know whether the event is on disk.
	return <-req.done
}

// writeAudits is the group-commit writer (see AppendAudit).
func (d *DB) writeAudits() {
	defer d.wg.Done()
	ctx := context.Background()
	batch := make([]*auditRequest, 0, maxAuditBatch)
	for {
		select {
		case <-d.done:
			return
		case req := <-d.audits:
			batch = append(batch[:0], req)
		}
		// Let callers that are about to append get in line: a yield, not
		// a wait, so a lone call is not delayed.
		runtime.Gosched()
	more:
		for len(batch) < maxAuditBatch {
			select {
			case req := <-d.audits:
				batch = append(batch, req)
			default:
				break more
			}
		}
		d.commitAudits(ctx, batch)
	}
}

// commitAudits commits a batch in one transaction. If that fails and the
// batch has more than one event, each is tried alone, so one bad event
// (a duplicate id) fails only its own caller.
func (d *DB) commitAudits(ctx context.Context, batch []*auditRequest) {
	recs := make([]*auditRecord, len(batch))
	for i, req := range batch {
		recs[i] = &req.rec
	}
	err := d.appendTx(ctx, recs)
	if err != nil && len(batch) > 1 {
		for _, req := range batch {
			req.done <- d.appendTx(ctx, []*auditRecord{&req.rec})
		}
		return
	}
	for _, req := range batch {
		req.done <- err
	}
}

// appendTx appends records in one immediate transaction.
func (d *DB) appendTx(ctx context.Context, recs []*auditRecord) error {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit events: begin: %w", err)
	}
	defer tx.Rollback()
	if err := d.appendChained(ctx, tx, recs); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append audit events: commit: %w", err)
	}
	d.notifyAudit()
	return nil
}

// recordPending records the pending audit event of ctx, if there is one
// still to write, in tx (see store.WithPendingAudit). It returns the
// recorded event to mark written once tx commits.
func (d *DB) recordPending(ctx context.Context, tx *sql.Tx) (*store.PendingAudit, *auditRecord, error) {
	p := store.PendingAuditFrom(ctx)
	e, ok := p.Event()
	if !ok {
		return nil, nil, nil
	}
	rec, err := encodeAudit(e)
	if err != nil {
		return nil, nil, fmt.Errorf("audit the change: %w", err)
	}
	if err := d.appendChained(ctx, tx, []*auditRecord{&rec}); err != nil {
		return nil, nil, fmt.Errorf("audit the change: %w", err)
	}
	return p, &rec, nil
}

// notifyAudit tells a waiting shipper that events were committed.
func (d *DB) notifyAudit() {
	select {
	case d.auditNotify <- struct{}{}:
	default:
	}
}

// AuditAppended is signalled after this process commits audit events
// (coalesced: one signal may stand for many commits).
func (d *DB) AuditAppended() <-chan struct{} { return d.auditNotify }

// auditColumns are the columns scanAudit reads, in its order.
const auditColumns = `id, at, workspace_id, actor_type, actor_id, actor_name, key_prefix, source, action, tool,
	resource_type, resource_id, decision, rules, reason, approval_id, args, result, latency_ms, client, session_id,
	request_id, seq, prev_hash, hash`

// scanAudit reads one event. Args and rules are decoded with numbers as
// json.Number, so the event hashes exactly as recorded.
func scanAudit(s interface{ Scan(...any) error }) (store.AuditEvent, error) {
	var e store.AuditEvent
	var rules, args, prev, hash sql.NullString
	var seq sql.NullInt64
	if err := s.Scan(&e.ID, &e.At, &e.WorkspaceID, &e.ActorType, &e.ActorID, &e.ActorName, &e.KeyPrefix, &e.Source,
		&e.Action, &e.Tool, &e.ResourceType, &e.ResourceID, &e.Decision, &rules, &e.Reason, &e.ApprovalID, &args,
		&e.Result, &e.LatencyMS, &e.Client, &e.SessionID, &e.RequestID, &seq, &prev, &hash); err != nil {
		return store.AuditEvent{}, err
	}
	if rules.Valid {
		if err := store.DecodeJSON([]byte(rules.String), &e.Rules); err != nil {
			return store.AuditEvent{}, fmt.Errorf("audit event %s: decode rules: %w", e.ID, err)
		}
	}
	if args.Valid {
		if err := store.DecodeJSON([]byte(args.String), &e.Args); err != nil {
			return store.AuditEvent{}, fmt.Errorf("audit event %s: decode args: %w", e.ID, err)
		}
	}
	e.Seq, e.PrevHash, e.Hash = seq.Int64, prev.String, hash.String
	e.At = e.At.UTC()
	return e, nil
}

// Audit returns the events f selects: newest first (by time), or with
// f.Oldest in chain order (by seq, chained events only). Events of
// f.WorkspaceID, or of every workspace (and of calls that had none) when it
// is empty, which only the operator's command line should ask for. f.Actor
// matches the actor's id or name or the key prefix; f.Since and f.Until
// bound the time (since <= at < until). f.Limit defaults to 50 and is
// capped at 1000.
func (d *DB) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	limit = min(limit, maxAuditLimit)
	var where []string
	var args []any
	add := func(cond string, vals ...any) {
		where = append(where, cond)
		args = append(args, vals...)
	}
	if f.WorkspaceID != "" {
		add("workspace_id = ?", f.WorkspaceID)
	}
	if f.Actor != "" {
		add("(actor_id = ? OR actor_name = ? OR key_prefix = ?)", f.Actor, f.Actor, f.Actor)
	}
	if f.Source != "" {
		add("source = ?", f.Source)
	}
	if f.Tool != "" {
		add("tool = ?", f.Tool)
	}
	if f.Decision != "" {
		add("decision = ?", f.Decision)
	}
	if !f.Since.IsZero() {
		add("at >= ?", utc(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", utc(f.Until))
	}
	if f.Hash != "" {
		add("hash = ?", f.Hash)
	}
	if f.Oldest || f.AfterSeq > 0 {
		add("seq > ?", f.AfterSeq)
	}
	q := `SELECT ` + auditColumns + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	if f.Oldest {
		q += ` ORDER BY seq`
	} else {
		q += ` ORDER BY at DESC, id DESC`
	}
	q += ` LIMIT ?`
	args = append(args, limit)
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}

// Compile-time check that DB is the outbox audit shipping reads.
var _ store.AuditOutbox = (*DB)(nil)

// UnshippedAudit returns up to limit events of the outbox, in chain order.
func (d *DB) UnshippedAudit(ctx context.Context, limit int) ([]store.AuditEvent, error) {
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	rows, err := d.read.QueryContext(ctx, `SELECT `+prefixed("e.", auditColumns)+`
		FROM audit_outbox o JOIN audit_events e ON e.seq = o.seq ORDER BY o.seq LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit outbox: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("read audit outbox: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit outbox: %w", err)
	}
	return out, nil
}

// prefixed qualifies a comma-separated column list with a table alias.
func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// MarkAuditShipped removes events, a batch UnshippedAudit returned (a prefix
// of the outbox), from the outbox and records the last as shipped. Marking
// a batch twice, or after another shipper did, changes nothing more.
func (d *DB) MarkAuditShipped(ctx context.Context, events []store.AuditEvent, at time.Time) error {
	if len(events) == 0 {
		return nil
	}
	last := events[0]
	for _, e := range events[1:] {
		if e.Seq > last.Seq {
			last = e
		}
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_outbox WHERE seq <= ?`, last.Seq)
		if err != nil {
			return fmt.Errorf("mark audit shipped: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("mark audit shipped: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE audit_shipping SET shipped = shipped + ?, failures = 0, last_error = '',
			last_seq = CASE WHEN last_seq < ? THEN ? ELSE last_seq END,
			last_id = CASE WHEN last_seq < ? THEN ? ELSE last_id END,
			last_hash = CASE WHEN last_seq < ? THEN ? ELSE last_hash END,
			last_at = CASE WHEN last_seq < ? THEN ? ELSE last_at END,
			shipped_at = ? WHERE id = 1`,
			n, last.Seq, last.Seq, last.Seq, last.ID, last.Seq, last.Hash, last.Seq, utc(last.At), utc(at))
		if err != nil {
			return fmt.Errorf("mark audit shipped: %w", err)
		}
		return nil
	})
}

// NoteAuditShipFailure records a failed shipping attempt and its reason.
func (d *DB) NoteAuditShipFailure(ctx context.Context, reason string, at time.Time) error {
	if len(reason) > 1000 {
		reason = reason[:1000]
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE audit_shipping SET failures = failures + 1, last_error = ?, last_error_at = ?
			WHERE id = 1`, store.ValidText(reason), utc(at))
		if err != nil {
			return fmt.Errorf("note audit shipping failure: %w", err)
		}
		return nil
	})
}

// AuditShipping returns the backlog (events in the outbox) and the state of
// shipping.
func (d *DB) AuditShipping(ctx context.Context) (store.AuditShipping, error) {
	var s store.AuditShipping
	var lastAt, shippedAt, errAt sql.NullTime
	err := d.read.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM audit_outbox), last_seq, last_id, last_hash,
		last_at, shipped_at, shipped, failures, last_error, last_error_at FROM audit_shipping WHERE id = 1`).Scan(
		&s.Backlog, &s.LastSeq, &s.LastID, &s.LastHash, &lastAt, &shippedAt, &s.Shipped, &s.Failures, &s.LastError, &errAt)
	if err != nil {
		return store.AuditShipping{}, fmt.Errorf("read audit shipping state: %w", err)
	}
	s.LastAt, s.ShippedAt, s.LastErrorAt = timePtr(lastAt), timePtr(shippedAt), timePtr(errAt)
	return s, nil
}

// VerifyAudit checks the store's hash chain: that no event sits outside it,
// that every link holds (store.VerifyChain), and that no event the
// warehouse already received is missing from its end. A broken link is in
// the report; the error is for failed reads.
func (d *DB) VerifyAudit(ctx context.Context) (store.ChainReport, error) {
	var id string
	err := d.read.QueryRowContext(ctx, `SELECT id FROM audit_events WHERE seq IS NULL OR hash IS NULL ORDER BY rowid LIMIT 1`).Scan(&id)
	switch {
	case err == nil:
		return store.ChainReport{Break: &store.ChainBreak{Kind: store.ChainUnchained, EventID: id,
			Detail: "the event has no seq or hash: it was inserted outside the chain"}}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return store.ChainReport{}, fmt.Errorf("verify audit: %w", err)
	}
	rep, err := store.VerifyChain(ctx, d.Audit)
	if err != nil || rep.Break != nil {
		return rep, err
	}
	ship, err := d.AuditShipping(ctx)
	if err != nil {
		return rep, err
	}
	if ship.LastSeq > rep.HeadSeq {
		rep.Break = &store.ChainBreak{Kind: store.ChainDeleted, EventID: ship.LastID, Seq: ship.LastSeq,
			Detail: fmt.Sprintf("the chain ends at seq %d but event %s (seq %d) was shipped to the warehouse: events at the end were deleted",
				rep.HeadSeq, ship.LastID, ship.LastSeq)}
	}
	return rep, nil
}

// chainExistingAudit chains the events recorded before migration 0002, in
// insertion order, and queues them for shipping. It runs inside the
// migration's transaction.
func chainExistingAudit(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT rowid, `+auditColumns+` FROM audit_events ORDER BY rowid`)
	if err != nil {
		return err
	}
	type legacy struct {
		rowid int64
		e     store.AuditEvent
	}
	var all []legacy
	for rows.Next() {
		var l legacy
		e, err := scanAudit(rowScanner{rows: rows, first: &l.rowid})
		if err != nil {
			rows.Close()
			return err
		}
		l.e = e
		all = append(all, l)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	prev := ""
	for i, l := range all {
		e := l.e
		e.Seq, e.PrevHash = int64(i+1), prev
		if e.Hash, err = store.AuditHash(e); err != nil {
			return fmt.Errorf("chain audit event %s: %w", e.ID, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE audit_events SET seq = ?, prev_hash = ?, hash = ? WHERE rowid = ?`,
			e.Seq, e.PrevHash, e.Hash, l.rowid); err != nil {
			return fmt.Errorf("chain audit event %s: %w", e.ID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_outbox (seq) VALUES (?)`, e.Seq); err != nil {
			return fmt.Errorf("chain audit event %s: %w", e.ID, err)
		}
		prev = e.Hash
	}
	return nil
}

// rowScanner scans a leading extra column into first, then the rest.
type rowScanner struct {
	rows  *sql.Rows
	first *int64
}

func (r rowScanner) Scan(dest ...any) error {
	return r.rows.Scan(append([]any{r.first}, dest...)...)
}
