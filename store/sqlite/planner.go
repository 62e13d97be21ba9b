package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// Compile-time check that Planner is the sync engine's planner.
var _ store.Planner = (*Planner)(nil)

// Planner is the writer of the embedded warehouse's cdp_planner schema
// (store.Planner): the file cdp_planner.db in the warehouse directory,
// written through one connection of its own, with nothing else attached.
// The warehouse's query connections keep attaching the file read-only, so
// a customer reads sync state with SQL while only this connection writes.
//
// The file is in WAL mode, so readers never wait for a run, with
// synchronous=NORMAL: a commit survives a crash of the process, and after
// a power cut at worst the last acknowledgements are lost, so the batches
// they covered are sent again under the same batch numbers, which a
// receiver drops by Idempotency-Key. A Planner is safe for concurrent use;
// its writes are serialised on the one connection.
type Planner struct {
	path string
	db   *sql.DB
}

// OpenPlanner returns the planner of the embedded warehouse in dir and
// creates its tables when missing. The caller must Close it.
func OpenPlanner(ctx context.Context, dir string) (*Planner, error) {
	if dir == "" {
		return nil, fmt.Errorf("open planner: directory is empty: %w", store.ErrInvalid)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open planner: %w", err)
	}
	path := filepath.Join(abs, PlannerFile)
	q := url.Values{}
	q.Add("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	db, err := sql.Open("sqlite", fileURI(path, q))
	if err != nil {
		return nil, fmt.Errorf("open planner %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	p := &Planner{path: path, db: db}
	if err := p.ensureTables(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return p, nil
}

// Path returns the path of cdp_planner.db.
func (p *Planner) Path() string { return p.path }

// Close releases the writer.
func (p *Planner) Close() error { return p.db.Close() }

// plannerTables are the tables of cdp_planner. Keys are text (a primary
// key of any type, as the engine formats it) and the hot tables are
// WITHOUT ROWID, clustered on the key the diff joins on.
var plannerTables = []string{
	`CREATE TABLE IF NOT EXISTS sync_runs (
		id           TEXT PRIMARY KEY,
		workspace_id TEXT NOT NULL,
		sync_id      TEXT NOT NULL,
		mode         TEXT NOT NULL,
		batch_size   INTEGER NOT NULL,
		trigger      TEXT NOT NULL,
		source       TEXT NOT NULL,
		phase        TEXT NOT NULL,
		state        TEXT NOT NULL,
		total        INTEGER NOT NULL DEFAULT 0,
		last_batch   INTEGER NOT NULL DEFAULT 0,
		added        INTEGER NOT NULL DEFAULT 0,
		changed      INTEGER NOT NULL DEFAULT 0,
		removed      INTEGER NOT NULL DEFAULT 0,
		failed       INTEGER NOT NULL DEFAULT 0,
		skipped      INTEGER NOT NULL DEFAULT 0,
		error        TEXT NOT NULL DEFAULT '',
		started_at   TEXT NOT NULL,
		finished_at  TEXT,
		duration_ms  INTEGER
	)`,
	`CREATE INDEX IF NOT EXISTS sync_runs_sync ON sync_runs (sync_id, started_at)`,
	`CREATE TABLE IF NOT EXISTS sync_snapshot (
		sync_id     TEXT NOT NULL,
		key         TEXT NOT NULL,
		fingerprint TEXT NOT NULL,
		run_id      TEXT NOT NULL,
		PRIMARY KEY (sync_id, key)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS sync_stage (
		run_id      TEXT NOT NULL,
		key         TEXT NOT NULL,
		fingerprint TEXT NOT NULL,
		fields      TEXT NOT NULL,
		PRIMARY KEY (run_id, key)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS sync_plan (
		run_id      TEXT NOT NULL,
		seq         INTEGER NOT NULL,
		kind        TEXT NOT NULL,
		key         TEXT NOT NULL,
		fingerprint TEXT,
		PRIMARY KEY (run_id, seq)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS sync_failures (
		sync_id   TEXT NOT NULL,
		key       TEXT NOT NULL,
		run_id    TEXT NOT NULL,
		batch     INTEGER NOT NULL,
		kind      TEXT NOT NULL,
		reason    TEXT NOT NULL,
		attempts  INTEGER NOT NULL,
		failed_at TEXT NOT NULL,
		PRIMARY KEY (sync_id, key)
	) WITHOUT ROWID`,
}

func (p *Planner) ensureTables(ctx context.Context) error {
	return p.inTx(ctx, "create planner tables", func(tx *sql.Tx) error {
		for _, q := range plannerTables {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}

// inTx runs fn in one immediate transaction on the writer.
func (p *Planner) inTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", op, p.path, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s in %s: %w", op, p.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s in %s: commit: %w", op, p.path, err)
	}
	return nil
}

const planStateColumns = `id, workspace_id, sync_id, mode, batch_size, trigger, source, started_at, phase, state, total,
	last_batch, added, changed, removed, failed, skipped FROM sync_runs`

func scanPlanState(q querier, ctx context.Context, runID string) (store.PlanState, error) {
	var s store.PlanState
	var started string
	err := q.QueryRowContext(ctx, `SELECT `+planStateColumns+` WHERE id = ?`, runID).Scan(&s.RunID, &s.WorkspaceID,
		&s.SyncID, &s.Mode, &s.BatchSize, &s.Trigger, &s.Source, &started, &s.Phase, &s.State, &s.Total, &s.LastBatch,
		&s.Added, &s.Changed, &s.Removed, &s.Failed, &s.Skipped)
	if errors.Is(err, sql.ErrNoRows) {
		return store.PlanState{}, fmt.Errorf("run %q: %w", runID, store.ErrNotFound)
	}
	if err != nil {
		return store.PlanState{}, err
	}
	if s.StartedAt, err = time.Parse(warehouseTimeFormat, started); err != nil {
		return store.PlanState{}, fmt.Errorf("run %q: started_at %q: %w", runID, started, err)
	}
	return s, nil
}

// OpenPlan records a new run, or returns the one recorded already.
func (p *Planner) OpenPlan(ctx context.Context, r store.PlanRun) (store.PlanState, error) {
	if r.RunID == "" || r.SyncID == "" || r.BatchSize < 1 {
		return store.PlanState{}, fmt.Errorf("open plan: run id, sync id and a positive batch size are required: %w", store.ErrInvalid)
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	var s store.PlanState
	err := p.inTx(ctx, "open plan "+r.RunID, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sync_runs (id, workspace_id, sync_id, mode, batch_size, trigger,
			source, phase, state, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			r.RunID, r.WorkspaceID, r.SyncID, r.Mode, r.BatchSize, r.Trigger, r.Source, store.PhaseExtracting,
			store.RunRunning, r.StartedAt.UTC().Format(warehouseTimeFormat)); err != nil {
			return err
		}
		var err error
		s, err = scanPlanState(tx, ctx, r.RunID)
		return err
	})
	return s, err
}

// ResetStage removes the run's staged members.
func (p *Planner) ResetStage(ctx context.Context, runID string) error {
	return p.inTx(ctx, "reset stage of "+runID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sync_stage WHERE run_id = ?`, runID)
		return err
	})
}

// stageRowsPerInsert is how many members one INSERT statement stages: a
// multi-row VALUES list is several times faster than a statement per row,
// and 4 values a row stays far below SQLite's 32766 bound values.
const stageRowsPerInsert = 200

// Stage adds members to the run's staging table.
func (p *Planner) Stage(ctx context.Context, runID string, members []store.StagedMember) error {
	if len(members) == 0 {
		return nil
	}
	return p.inTx(ctx, "stage members of "+runID, func(tx *sql.Tx) error {
		var full *sql.Stmt
		defer func() {
			if full != nil {
				full.Close()
			}
		}()
		args := make([]any, 0, 4*stageRowsPerInsert)
		for start := 0; start < len(members); start += stageRowsPerInsert {
			chunk := members[start:min(start+stageRowsPerInsert, len(members))]
			args = args[:0]
			for _, m := range chunk {
				args = append(args, runID, m.Key, m.Fingerprint, string(m.Fields))
			}
			if len(chunk) == stageRowsPerInsert {
				if full == nil {
					st, err := tx.PrepareContext(ctx, stageInsert(stageRowsPerInsert))
					if err != nil {
						return err
					}
					full = st
				}
				if _, err := full.ExecContext(ctx, args...); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.ExecContext(ctx, stageInsert(len(chunk)), args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// stageInsert is the INSERT of n staged members.
func stageInsert(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO sync_stage (run_id, key, fingerprint, fields) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?)")
	}
	b.WriteString(` ON CONFLICT (run_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, fields = excluded.fields`)
	return b.String()
}

// Diff computes and numbers the run's records. Records are numbered adds
// first, then changes, then removes, each in key order, so the plan is
// the same whenever it is computed from the same stage and snapshot.
func (p *Planner) Diff(ctx context.Context, runID string, skipped int64) (store.PlanState, error) {
	var s store.PlanState
	err := p.inTx(ctx, "diff run "+runID, func(tx *sql.Tx) error {
		var err error
		if s, err = scanPlanState(tx, ctx, runID); err != nil {
			return err
		}
		if s.Phase != store.PhaseExtracting {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sync_plan WHERE run_id = ?`, runID); err != nil {
			return err
		}
		var q string
		var args []any
		if s.Mode == "append" {
			q = `INSERT INTO sync_plan (run_id, seq, kind, key, fingerprint)
				SELECT run_id, row_number() OVER (ORDER BY key), 'append', key, fingerprint
				FROM sync_stage WHERE run_id = ?`
			args = []any{runID}
		} else {
			removes := ``
			args = []any{runID, runID, s.SyncID, s.SyncID, runID}
			if s.Mode == "mirror" {
				removes = `UNION ALL
					SELECT 2, 'remove', n.key, NULL FROM sync_snapshot n
					WHERE n.sync_id = ? AND NOT EXISTS (SELECT 1 FROM sync_stage s WHERE s.run_id = ? AND s.key = n.key)`
				args = append(args, s.SyncID, runID)
			}
			q = `INSERT INTO sync_plan (run_id, seq, kind, key, fingerprint)
				SELECT ?, row_number() OVER (ORDER BY ord, key), kind, key, fingerprint FROM (
					SELECT 0 AS ord, 'add' AS kind, s.key, s.fingerprint FROM sync_stage s
					WHERE s.run_id = ? AND NOT EXISTS (SELECT 1 FROM sync_snapshot n WHERE n.sync_id = ? AND n.key = s.key)
					UNION ALL
					SELECT 1, 'change', s.key, s.fingerprint FROM sync_stage s
					JOIN sync_snapshot n ON n.sync_id = ? AND n.key = s.key
					WHERE s.run_id = ? AND n.fingerprint <> s.fingerprint
					` + removes + `
				)`
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		// A refused member the plan no longer sends needs no retry.
		if _, err := tx.ExecContext(ctx, `DELETE FROM sync_failures WHERE sync_id = ?
			AND key NOT IN (SELECT key FROM sync_plan WHERE run_id = ?)`, s.SyncID, runID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sync_runs SET phase = ?, skipped = ?,
			total = (SELECT count(*) FROM sync_plan WHERE run_id = ?) WHERE id = ?`,
			store.PhaseSending, skipped, runID, runID); err != nil {
			return err
		}
		s, err = scanPlanState(tx, ctx, runID)
		return err
	})
	return s, err
}

// Preview counts a dry run's diff in one read transaction.
func (p *Planner) Preview(ctx context.Context, runID, syncID, mode string) (store.DiffCounts, error) {
	var c store.DiffCounts
	err := p.inTx(ctx, "preview run "+runID, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM sync_stage WHERE run_id = ?),
			(SELECT count(*) FROM sync_snapshot WHERE sync_id = ?)`, runID, syncID).Scan(&c.Staged, &c.Held); err != nil {
			return err
		}
		if mode == "append" {
			c.Added = c.Staged
			return nil
		}
		if err := tx.QueryRowContext(ctx, `SELECT
			count(*) FILTER (WHERE n.key IS NULL), count(*) FILTER (WHERE n.fingerprint <> s.fingerprint)
			FROM sync_stage s LEFT JOIN sync_snapshot n ON n.sync_id = ? AND n.key = s.key
			WHERE s.run_id = ?`, syncID, runID).Scan(&c.Added, &c.Changed); err != nil {
			return err
		}
		if mode == "mirror" {
			return tx.QueryRowContext(ctx, `SELECT count(*) FROM sync_snapshot n WHERE n.sync_id = ?
				AND NOT EXISTS (SELECT 1 FROM sync_stage s WHERE s.run_id = ? AND s.key = n.key)`, syncID, runID).Scan(&c.Removed)
		}
		return nil
	})
	return c, err
}

// Records returns planned records with their staged fields.
func (p *Planner) Records(ctx context.Context, runID string, after int64, n int) ([]store.PlannedRecord, error) {
	rows, err := p.db.QueryContext(ctx, `SELECT p.seq, p.kind, p.key, s.fields FROM sync_plan p
		LEFT JOIN sync_stage s ON s.run_id = p.run_id AND s.key = p.key AND p.kind <> 'remove'
		WHERE p.run_id = ? AND p.seq > ? AND p.seq <= ? ORDER BY p.seq`, runID, after, after+int64(n))
	if err != nil {
		return nil, fmt.Errorf("read planned records of %s: %w", runID, err)
	}
	defer rows.Close()
	out := make([]store.PlannedRecord, 0, n)
	for rows.Next() {
		var r store.PlannedRecord
		var fields sql.NullString
		if err := rows.Scan(&r.Seq, &r.Kind, &r.Key, &fields); err != nil {
			return nil, fmt.Errorf("read planned records of %s: %w", runID, err)
		}
		if fields.Valid {
			r.Fields = []byte(fields.String)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read planned records of %s: %w", runID, err)
	}
	return out, nil
}

// Ack applies a batch's answer. Set-based statements move the accepted
// records of the batch's Seq range into the snapshot, so an acknowledgement
// costs a few statements, not one per record.
func (p *Planner) Ack(ctx context.Context, a store.PlanAck) (store.PlanState, error) {
	failed := make(map[string]string, len(a.Failed))
	for seq, reason := range a.Failed {
		failed[strconv.FormatInt(seq, 10)] = reason
	}
	failedJSON, err := json.Marshal(failed)
	if err != nil {
		return store.PlanState{}, fmt.Errorf("ack batch %d of %s: %w", a.Batch, a.RunID, err)
	}
	now := time.Now().UTC().Format(warehouseTimeFormat)
	var s store.PlanState
	err = p.inTx(ctx, fmt.Sprintf("ack batch %d of %s", a.Batch, a.RunID), func(tx *sql.Tx) error {
		var err error
		if s, err = scanPlanState(tx, ctx, a.RunID); err != nil {
			return err
		}
		if a.Batch <= s.LastBatch {
			return nil // acknowledged already
		}
		if a.Batch != s.LastBatch+1 {
			return fmt.Errorf("batch %d acknowledged after batch %d: %w", a.Batch, s.LastBatch, store.ErrConflict)
		}
		// accepted selects the batch's records the destination took.
		const accepted = `FROM sync_plan WHERE run_id = ? AND seq BETWEEN ? AND ?
			AND seq NOT IN (SELECT CAST(key AS INTEGER) FROM json_each(?))`
		acc := []any{a.RunID, a.From, a.To, string(failedJSON)}
		stmts := []struct {
			q    string
			args []any
		}{
			{`INSERT INTO sync_snapshot (sync_id, key, fingerprint, run_id)
				SELECT ?, key, fingerprint, ? ` + accepted + ` AND kind IN ('add', 'change')
				ON CONFLICT (sync_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, run_id = excluded.run_id`,
				append([]any{a.SyncID, a.RunID}, acc...)},
			{`DELETE FROM sync_snapshot WHERE sync_id = ? AND key IN (SELECT key ` + accepted + ` AND kind = 'remove')`,
				append([]any{a.SyncID}, acc...)},
			{`DELETE FROM sync_failures WHERE sync_id = ? AND key IN (SELECT key ` + accepted + `)`,
				append([]any{a.SyncID}, acc...)},
			{`INSERT INTO sync_failures (sync_id, key, run_id, batch, kind, reason, attempts, failed_at)
				SELECT ?, p.key, p.run_id, ?, p.kind, f.value, 1, ? FROM sync_plan p
				JOIN json_each(?) f ON p.seq = CAST(f.key AS INTEGER)
				WHERE p.run_id = ? AND p.seq BETWEEN ? AND ?
				ON CONFLICT (sync_id, key) DO UPDATE SET run_id = excluded.run_id, batch = excluded.batch,
					kind = excluded.kind, reason = excluded.reason, attempts = sync_failures.attempts + 1,
					failed_at = excluded.failed_at`,
				[]any{a.SyncID, a.Batch, now, string(failedJSON), a.RunID, a.From, a.To}},
			{`UPDATE sync_runs SET last_batch = ?,
				added = added + (SELECT count(*) ` + accepted + ` AND kind IN ('add', 'append')),
				changed = changed + (SELECT count(*) ` + accepted + ` AND kind = 'change'),
				removed = removed + (SELECT count(*) ` + accepted + ` AND kind = 'remove'),
				failed = failed + (SELECT count(*) FROM sync_plan p JOIN json_each(?) f ON p.seq = CAST(f.key AS INTEGER)
					WHERE p.run_id = ? AND p.seq BETWEEN ? AND ?)
				WHERE id = ?`,
				slices.Concat([]any{a.Batch}, acc, acc, acc, []any{string(failedJSON), a.RunID, a.From, a.To, a.RunID})},
		}
		for _, st := range stmts {
			if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
				return err
			}
		}
		s, err = scanPlanState(tx, ctx, a.RunID)
		return err
	})
	return s, err
}

// Finish records the run's outcome and removes its working rows.
func (p *Planner) Finish(ctx context.Context, runID, state, errText string, at time.Time) error {
	return p.inTx(ctx, "finish run "+runID, func(tx *sql.Tx) error {
		s, err := scanPlanState(tx, ctx, runID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sync_runs SET phase = ?, state = ?, error = ?, finished_at = ?,
			duration_ms = ? WHERE id = ?`, store.PhaseDone, state, errText, at.UTC().Format(warehouseTimeFormat),
			at.Sub(s.StartedAt).Milliseconds(), runID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sync_plan WHERE run_id = ?`, runID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sync_stage WHERE run_id = ?`, runID)
		return err
	})
}
