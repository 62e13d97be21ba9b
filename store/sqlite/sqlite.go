package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/google/uuid"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/signalsmith/agent-server/store"
)

// FileName is the name of the metadata database inside the data directory.
const FileName = "signalsmith.db"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Compile-time check that DB implements the metadata store.
var _ store.Store = (*DB)(nil)

// DB is the metadata store (store.Store) over one SQLite file. Writes go
// through a single connection with immediate transactions, so concurrent
// writers queue in Go instead of failing with SQLITE_BUSY; reads go through a
// separate pool of read-only connections, which WAL mode lets run alongside
// the writer. A DB is safe for concurrent use.
type DB struct {
	path  string
	write *sql.DB
	read  *sql.DB

	// touches carries last-use records of keys to a background writer so
	// Principal never waits on a write.
	touches   chan touch
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	// audits carries AppendAudit calls to the group-commit writer;
	// auditNotify tells a shipper that events were committed.
	audits      chan *auditRequest
	auditNotify chan struct{}

	mu      sync.Mutex
	touched map[string]time.Time // key id -> last use recorded by this process

	// stmts are the hot reads, prepared once; cache holds what they and
	// the catalog and settings reads return, under the version row
	// (cache.go).
	stmts *statements
	cache caches
}

// Open opens (creating when absent) the metadata store in dataDir: the
// directory is created with mode 0700 and the database is the file FileName
// inside it. It applies the embedded migrations the database lacks, each in
// a transaction, and refuses a database migrated by a newer binary. The
// caller must Close the DB.
func Open(ctx context.Context, dataDir string) (*DB, error) {
	if dataDir == "" {
		return nil, fmt.Errorf("open metadata store: data directory is empty: %w", store.ErrInvalid)
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("open metadata store: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open metadata store: create data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)

	write, err := sql.Open("sqlite", writeDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open metadata store %s: %w", path, err)
	}
	// One writer connection, kept open for the life of the DB: it owns the
	// WAL and the shared-memory index the read-only connections rely on.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("open metadata store %s: %w", path, err)
	}

	read, err := sql.Open("sqlite", readDSN(path))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open metadata store %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	if err := read.PingContext(ctx); err != nil {
		read.Close()
		write.Close()
		return nil, fmt.Errorf("open metadata store %s: read pool: %w", path, err)
	}
	stmts, err := prepareStatements(ctx, read, write)
	if err != nil {
		read.Close()
		write.Close()
		return nil, fmt.Errorf("open metadata store %s: %w", path, err)
	}

	d := &DB{
		path:    path,
		write:   write,
		read:    read,
		stmts:   stmts,
		touches: make(chan touch, 256),
		done:    make(chan struct{}),
		touched: make(map[string]time.Time),
		// Unbuffered: an append is taken only by the writer, which then
		// always answers it, also while closing.
		audits:      make(chan *auditRequest),
		auditNotify: make(chan struct{}, 1),
	}
	d.wg.Add(2)
	go d.recordUses()
	go d.writeAudits()
	return d, nil
}

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// Close waits for pending key-use records and the audit batch being
// committed to be written, and closes both connection pools. Appends after
// Close fail. Calling it again is a no-op.
func (d *DB) Close() error {
	var err error
	d.closeOnce.Do(func() {
		close(d.done)
		d.wg.Wait()
		err = errors.Join(d.stmts.close(), d.read.Close(), d.write.Close())
	})
	return err
}

// writeDSN is the writer's data source name. Only the path comes from
// outside, escaped as a file: URI path; every option is a constant.
func writeDSN(path string) string {
	q := url.Values{}
	q.Add("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_time_format", "sqlite")
	return fileURI(path, q)
}

// readDSN is the read pool's data source name: SQLite opens the file
// read-only (mode=ro) and query_only refuses writes on top of that. The time
// format matters here too: it is how bound time.Time arguments are written.
func readDSN(path string) string {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "query_only(1)")
	q.Set("_time_format", "sqlite")
	return fileURI(path, q)
}

// fileURI returns a SQLite file: URI for an absolute path; url.URL escapes
// the characters that would end the path early ('?', '#', '%').
func fileURI(path string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

// migration is one embedded schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. File names
// are "NNNN_description.sql"; versions are unique and positive.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	seen := make(map[int]string)
	for _, p := range names {
		base := filepath.Base(p)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", base)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, base, v)
		}
		seen[v] = base
		b, err := migrationFiles.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// migrate applies the migrations the database lacks, in one immediate
// transaction with their schema_migrations records, so a crash leaves the
// schema either before or after, never half-way. A recorded version this
// binary does not know means a newer binary migrated the file: refuse it
// rather than run against a schema we do not understand.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	known := make(map[int]bool, len(ms))
	latest := 0
	for _, m := range ms {
		known[m.version] = true
		latest = max(latest, m.version)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMP NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	applied := make(map[int]bool)
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: %w", err)
		}
		applied[v] = true
		if !known[v] {
			rows.Close()
			return fmt.Errorf("database schema version %d is newer than this binary supports (up to %d): upgrade signalsmith", v, latest)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if hook := afterMigration[m.version]; hook != nil {
			if err := hook(ctx, tx); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, time.Now().UTC()); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// afterMigration are Go steps that run right after a migration's SQL, in
// the same transaction, for what SQL cannot do (SHA-256).
var afterMigration = map[int]func(context.Context, *sql.Tx) error{
	2: chainExistingAudit,
}

// inTx runs fn in one immediate write transaction and commits when fn
// returns nil. fn's error is returned as is.
//
// When ctx carries a pending audit event (store.WithPendingAudit) that is
// not written yet, inTx records it, with decision executed, chained, in the
// same transaction after fn succeeds, and marks it written once committed:
// the state change and its audit record are durable together or not at
// all. A store method that changes state must therefore use inTx once per
// call, and call store.NoteAuditResource with the id of an object it
// creates.
func (d *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	// The transaction holds the write lock from its start (immediate), so
	// pins checked here hold until it commits.
	if err := checkPins(ctx, tx); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	pending, rec, err := d.recordPending(ctx, tx)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	// The change may have bumped a version: the call's next read must see
	// it, not the versions it read before.
	store.ScopeOf(ctx).Forget(d)
	if rec != nil {
		pending.MarkWritten(rec.e)
		d.notifyAudit()
	}
	return nil
}

// checkPins refuses, with an error wrapping store.ErrPinChanged, a write
// whose context pins objects (store.WithPins) one of which is gone, renamed
// or at another version now.
func checkPins(ctx context.Context, tx *sql.Tx) error {
	for _, pin := range store.PinsFrom(ctx) {
		var table string
		switch pin.Type {
		case "model":
			table = "models"
		case "audience":
			table = "audiences"
		default:
			return fmt.Errorf("%s %s: unknown kind of pin: %w", pin.Type, pin.ID, store.ErrPinChanged)
		}
		var name string
		var version int
		err := tx.QueryRowContext(ctx, `SELECT name, version FROM `+table+` WHERE id = ?`, pin.ID).Scan(&name, &version)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%s %s no longer exists: %w", pin.Type, pin.ID, store.ErrPinChanged)
		case err != nil:
			return fmt.Errorf("check pinned %s %s: %w", pin.Type, pin.ID, err)
		case name != pin.Name || version != pin.Version:
			return fmt.Errorf("%s %s is %q at version %d, not %q at version %d: %w", pin.Type, pin.ID, name, version, pin.Name, pin.Version, store.ErrPinChanged)
		}
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// newID returns a type prefix plus a UUIDv7, so ids of one type sort by
// creation time.
func newID(prefix string) (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return prefix + u.String(), nil
}

// Id prefixes by object type.
const (
	prefixWorkspace   = "ws_"
	prefixMember      = "mem_"
	prefixGroup       = "grp_"
	prefixKey         = "key_"
	prefixModel       = "mdl_"
	prefixAudience    = "aud_"
	prefixDestination = "dst_"
	prefixSync        = "syn_"
)

// utc normalises a time for storage: every stored time is UTC, which keeps
// the text encoding's order the time order.
func utc(t time.Time) time.Time { return t.UTC() }

// nullTime is the SQL value of an optional time.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}

// timePtr converts a scanned optional time.
func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time.UTC()
	return &v
}

// sqliteCode returns the extended result code of a SQLite error, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// invalid returns an ErrInvalid error for op naming the offending field.
func invalid(op, field, format string, args ...any) error {
	return fmt.Errorf("%s: %s %s: %w", op, field, fmt.Sprintf(format, args...), store.ErrInvalid)
}

// checkName validates a display name (workspace, member, catalog object):
// 1-200 characters, no control characters, no surrounding spaces.
func checkName(op, field, name string) error {
	switch {
	case name == "":
		return invalid(op, field, "is required")
	case len(name) > 200:
		return invalid(op, field, "is longer than 200 bytes")
	case strings.TrimSpace(name) != name:
		return invalid(op, field, "%q has leading or trailing spaces", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return invalid(op, field, "%q contains control characters", name)
	}
	return nil
}

// checkObjectName is checkName for the names of catalog objects (models,
// audiences, destinations), which callers may also use as references: a
// name that looks like an id (store.LooksLikeID) is refused, so a
// reference in the id form can only ever mean an id.
func checkObjectName(op, field, name string) error {
	if err := checkName(op, field, name); err != nil {
		return err
	}
	if prefix, ok := store.LooksLikeID(name); ok {
		return invalid(op, field, "%q looks like an id (it starts with %s): choose a name that does not", name, prefix)
	}
	return nil
}

// checkWorkspace returns ErrNotFound unless the workspace exists.
func checkWorkspace(ctx context.Context, q querier, op, workspaceID string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM workspaces WHERE id = ?`, workspaceID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: workspace %q: %w", op, workspaceID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
