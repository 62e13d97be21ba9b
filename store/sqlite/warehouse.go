package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/signalsmith/agent-server/store"
)

// Files of the embedded warehouse inside its directory (DESIGN.md section
// 9). Each is attached under the schema of the same name.
const (
	AnalyticsFile = "analytics.db"
	PlannerFile   = "cdp_planner.db"
	AuditFile     = "cdp_audit.db"
)

// Warehouse query defaults, used when WarehouseOptions leaves them zero.
const (
	DefaultQueryTimeout = 30 * time.Second
	DefaultMaxRows      = 10000
)

// Compile-time check that Warehouse implements the warehouse interface.
var _ store.Warehouse = (*Warehouse)(nil)

// WarehouseOptions configure OpenWarehouse. The zero value is usable.
type WarehouseOptions struct {
	// Timeout is the query timeout when a caller's limits give none
	// (default DefaultQueryTimeout).
	Timeout time.Duration
	// MaxRows is the default and the cap of rows a query returns (default
	// DefaultMaxRows): a caller's MaxRows that is zero or larger is replaced
	// by it.
	MaxRows int
	// ReadConns is the size of the pool that runs queries (default
	// max(4, GOMAXPROCS)).
	ReadConns int
}

// Warehouse is the embedded warehouse (store.Warehouse): the SQLite files
// analytics.db, cdp_planner.db and cdp_audit.db in one directory, attached
// read-only under the schemas analytics, cdp_planner and cdp_audit to every
// connection, so SQL names are schema.table as in Trino.
//
// The engine decides what a query may do, never a scan of its text. The
// files are attached with mode=ro and the connections are query_only, so
// no write reaches a file. An authorizer on every connection, installed
// after the attachments, is an allow-list: SELECT, reads of tables of the
// analytics schema (not its sqlite_ tables), the JSON table-valued
// functions and a list of scalar, aggregate and window functions; it denies
// everything else while SQLite compiles the statement. Before a query runs,
// checkStatement prepares it once more on the same connection to refuse a
// second statement and to check the compiled program (see there). A query
// is interrupted when its timeout passes, also between rows. A query with
// access filters runs on a connection that has, for that query only, a
// TEMP view standing in for each filtered table (filter.go).
//
// Catalog lookups (Tables, Describe) go through a separate small pool with
// its own authorizer and fixed SQL, so a caller's query can never read
// sqlite_schema or the other schemas. A Warehouse is safe for concurrent
// use.
type Warehouse struct {
	dir     string
	read    *sql.DB // callers' queries
	meta    *sql.DB // Tables and Describe, fixed SQL only
	timeout time.Duration
	maxRows int

	closeOnce sync.Once
	closeErr  error
}

// errQueryTimeout is the cause of a query context that ran out of time, so
// a query over its limit is told apart from a caller that went away.
var errQueryTimeout = errors.New("query timeout")

// OpenWarehouse opens the embedded warehouse in dir (the data directory's
// warehouse folder). analytics.db must exist (demo.Generate writes it; the
// error wraps fs.ErrNotExist otherwise); empty cdp_planner.db and
// cdp_audit.db are created when absent. The caller must Close the
// Warehouse.
func OpenWarehouse(ctx context.Context, dir string, opts WarehouseOptions) (*Warehouse, error) {
	if dir == "" {
		return nil, fmt.Errorf("open warehouse: directory is empty: %w", store.ErrInvalid)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open warehouse: %w", err)
	}
	analytics := filepath.Join(abs, AnalyticsFile)
	fi, err := os.Stat(analytics)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open warehouse: %s is missing (generate the demo data first): %w", analytics, fs.ErrNotExist)
	case err != nil:
		return nil, fmt.Errorf("open warehouse: %w", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("open warehouse: %s is not a file: %w", analytics, store.ErrInvalid)
	}
	for _, name := range []string{PlannerFile, AuditFile} {
		// SQLite treats an empty file as an empty database.
		f, err := os.OpenFile(filepath.Join(abs, name), os.O_RDONLY|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open warehouse: create %s: %w", name, err)
		}
		f.Close()
	}

	w := &Warehouse{dir: abs, timeout: opts.Timeout, maxRows: opts.MaxRows}
	if w.timeout <= 0 {
		w.timeout = DefaultQueryTimeout
	}
	if w.maxRows <= 0 {
		w.maxRows = DefaultMaxRows
	}
	n := opts.ReadConns
	if n <= 0 {
		n = max(4, runtime.GOMAXPROCS(0))
	}
	if w.read, err = openWarehousePool(ctx, abs, queryPolicy, n); err != nil {
		return nil, fmt.Errorf("open warehouse %s: %w", abs, err)
	}
	if w.meta, err = openWarehousePool(ctx, abs, catalogPolicy, 2); err != nil {
		w.read.Close()
		return nil, fmt.Errorf("open warehouse %s: catalog: %w", abs, err)
	}
	return w, nil
}

// Dir returns the warehouse directory.
func (w *Warehouse) Dir() string { return w.dir }

// Dialect returns the SQLite dialect.
func (w *Warehouse) Dialect() store.Dialect { return Dialect{} }

// Close closes both connection pools. Calling it again is a no-op.
func (w *Warehouse) Close() error {
	w.closeOnce.Do(func() {
		w.closeErr = errors.Join(w.read.Close(), w.meta.Close())
	})
	return w.closeErr
}

// Tables lists the tables and views of the analytics schema by name. The
// row count comes from the statistics ANALYZE leaves (demo.Generate runs it)
// and is absent for a table without statistics: counting rows on every call
// would scan the whole warehouse.
func (w *Warehouse) Tables(ctx context.Context) ([]store.Table, error) {
	rows, err := w.meta.QueryContext(ctx, `SELECT name FROM analytics.sqlite_schema
		WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
		ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list warehouse tables: %w", err)
	}
	defer rows.Close()
	var tables []store.Table
	for rows.Next() {
		t := store.Table{Schema: store.SchemaAnalytics}
		if err := rows.Scan(&t.Name); err != nil {
			return nil, fmt.Errorf("list warehouse tables: %w", err)
		}
		tables = append(tables, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list warehouse tables: %w", err)
	}
	counts, err := w.statCounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list warehouse tables: %w", err)
	}
	for i := range tables {
		if n, ok := counts[strings.ToLower(tables[i].Name)]; ok {
			tables[i].RowCount = &n
		}
	}
	return tables, nil
}

// statCounts reads row counts from analytics.sqlite_stat1, if ANALYZE made
// one: the first number of each row is the table's row count.
func (w *Warehouse) statCounts(ctx context.Context) (map[string]int64, error) {
	var n int
	err := w.meta.QueryRowContext(ctx, `SELECT count(*) FROM analytics.sqlite_schema
		WHERE type = 'table' AND name = 'sqlite_stat1'`).Scan(&n)
	if err != nil || n == 0 {
		return nil, err
	}
	rows, err := w.meta.QueryContext(ctx, `SELECT tbl, stat FROM analytics.sqlite_stat1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := make(map[string]int64)
	for rows.Next() {
		var tbl, stat string
		if err := rows.Scan(&tbl, &stat); err != nil {
			return nil, err
		}
		first, _, _ := strings.Cut(stat, " ")
		c, err := strconv.ParseInt(first, 10, 64)
		if key := strings.ToLower(tbl); err == nil && c >= counts[key] {
			counts[key] = c
		}
	}
	return counts, rows.Err()
}

// Describe returns a table of the analytics schema with its columns,
// declared types and nullability. Any other schema, an internal sqlite_
// table and an unknown table are store.ErrNotFound.
func (w *Warehouse) Describe(ctx context.Context, schema, name string) (store.Table, error) {
	if !strings.EqualFold(schema, store.SchemaAnalytics) || name == "" ||
		strings.HasPrefix(strings.ToLower(name), "sqlite_") {
		return store.Table{}, fmt.Errorf("describe %s.%s: %w", schema, name, store.ErrNotFound)
	}
	t := store.Table{Schema: store.SchemaAnalytics}
	err := w.meta.QueryRowContext(ctx, `SELECT name FROM analytics.sqlite_schema
		WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE`, name).Scan(&t.Name)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Table{}, fmt.Errorf("describe %s.%s: %w", schema, name, store.ErrNotFound)
	}
	if err != nil {
		return store.Table{}, fmt.Errorf("describe %s.%s: %w", schema, name, err)
	}
	rows, err := w.meta.QueryContext(ctx, `SELECT name, type, "notnull", pk
		FROM pragma_table_xinfo(?, 'analytics') WHERE hidden = 0 ORDER BY cid`, t.Name)
	if err != nil {
		return store.Table{}, fmt.Errorf("describe %s.%s: %w", schema, name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c store.Column
		var notNull, pk int
		if err := rows.Scan(&c.Name, &c.Type, &notNull, &pk); err != nil {
			return store.Table{}, fmt.Errorf("describe %s.%s: %w", schema, name, err)
		}
		// An INTEGER PRIMARY KEY is the rowid, which is never NULL; other
		// primary key columns of a rowid table may be, for historical reasons.
		c.Nullable = notNull == 0 && !(pk > 0 && strings.EqualFold(c.Type, "INTEGER"))
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return store.Table{}, fmt.Errorf("describe %s.%s: %w", schema, name, err)
	}
	return t, nil
}

// Query runs one read-only statement with bound arguments and returns at
// most MaxRows rows (Truncated when there were more). Errors wrap
// store.ErrQueryRefused (a write, a table outside the analytics schema, a
// function not on the allow-list, more than one statement, a
// schema-qualified read of a table with an access filter),
// store.ErrQueryLimit (the query ran past its timeout and was interrupted),
// store.ErrInvalid (a statement SQLite cannot compile, such as a syntax
// error or an unknown column), or the context's error when ctx ends first.
// What the engine reports is a store.QueryError in words of the warehouse's
// own (warehouse_errors.go), never SQLite's message, which can quote data.
//
// limits.Filters restrict the rows the query sees (see applyFilters): a
// filtered table named without its schema is a view over the permitted
// rows; named with it, the read is refused.
//
// A time.Time argument is bound as UTC text in the format of SQLite's
// datetime() ("2006-01-02 15:04:05", with a fraction when there is one),
// the format the warehouse stores timestamps in, so comparisons with
// timestamp columns hold. Values are int64, float64, string, nil, or []byte
// for a BLOB that is not UTF-8 text, so a Result encodes to JSON as it is.
func (w *Warehouse) Query(ctx context.Context, limits store.QueryLimits, query string, args ...any) (store.Result, error) {
	var res store.Result
	err := w.session(ctx, limits, func(s *session) error {
		if _, err := s.check(query); err != nil {
			return err
		}
		var err error
		res, err = s.read(query, args, s.maxRows)
		return err
	})
	return res, err
}

// session is one call's hold on a warehouse connection: the connection, the
// call's context with its timeout, and the access filters installed on the
// connection for the call.
type session struct {
	ctx     context.Context
	timeout time.Duration
	maxRows int
	conn    *sql.Conn
	rc      *warehouseConn
	// filters is installed on rc while fn runs; nil without filters.
	filters *connFilters
}

// session runs fn on a connection of the read pool with limits applied: a
// context that ends at the timeout, and limits.Filters installed on the
// connection (and removed after fn, or the connection is discarded). Errors
// are mapped by warehouseQueryError.
func (w *Warehouse) session(ctx context.Context, limits store.QueryLimits, fn func(*session) error) error {
	s := &session{timeout: limits.Timeout, maxRows: limits.MaxRows}
	if s.timeout <= 0 {
		s.timeout = w.timeout
	}
	if s.maxRows <= 0 || s.maxRows > w.maxRows {
		s.maxRows = w.maxRows
	}
	qctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errQueryTimeout)
	defer cancel()
	s.ctx = qctx
	plan, err := w.planFilters(qctx, limits.Filters)
	if err != nil {
		return s.error(err)
	}
	if s.conn, err = w.read.Conn(qctx); err != nil {
		return s.error(err)
	}
	defer s.conn.Close()
	err = s.conn.Raw(func(dc any) error {
		c, ok := dc.(*warehouseConn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		s.rc = c
		if plan == nil {
			return nil
		}
		f, err := c.applyFilters(context.WithoutCancel(qctx), w.dir, plan)
		if err != nil {
			// The connection may hold half of the filters: never reuse it.
			return fmt.Errorf("%w: apply access filters: %w", driver.ErrBadConn, err)
		}
		s.filters = f
		return nil
	})
	if err != nil {
		return s.error(err)
	}
	if s.filters != nil {
		defer func() {
			// Removal runs whether or not fn succeeded, and is not
			// cancelled with the call. A connection that keeps any of it
			// is discarded.
			_ = s.conn.Raw(func(any) error {
				if err := s.rc.removeFilters(context.WithoutCancel(qctx), s.filters); err != nil {
					return fmt.Errorf("%w: remove access filters: %w", driver.ErrBadConn, err)
				}
				return nil
			})
		}()
	}
	return s.error(fn(s))
}

// error maps err to the warehouse's error kinds, and keeps the name the
// session's filters gave the analytics file out of the message.
func (s *session) error(err error) error {
	if err == nil {
		return nil
	}
	err = warehouseQueryError(s.ctx, s.timeout, s.rc, err)
	if s.filters != nil && strings.Contains(err.Error(), s.filters.schema) {
		err = &renamedError{err: err, old: s.filters.schema, new: store.SchemaAnalytics}
	}
	return err
}

// renamedError is err with a name replaced in its message.
type renamedError struct {
	err      error
	old, new string
}

func (e *renamedError) Error() string { return strings.ReplaceAll(e.err.Error(), e.old, e.new) }
func (e *renamedError) Unwrap() error { return e.err }

// check decides with checkStatement whether query may run on the session's
// connection, and describes its result columns.
func (s *session) check(query string) (stmtInfo, error) {
	if strings.IndexByte(query, 0) >= 0 {
		return stmtInfo{}, fmt.Errorf("query: the text contains a NUL byte: %w", store.ErrInvalid)
	}
	var info stmtInfo
	err := s.conn.Raw(func(any) error {
		var err error
		info, err = s.rc.checkStatement(query)
		return err
	})
	return info, err
}

// read runs query, which check has accepted, and returns at most maxRows
// rows. Its errors are readErrors: what fails now fails while the statement
// runs, and warehouseQueryError maps it by SQLite's code alone.
func (s *session) read(query string, args []any, maxRows int) (store.Result, error) {
	// The driver interrupts a statement whose context ends only while it
	// computes the first row; a statement that is slow between later rows
	// would run on. This watch covers the whole read. finished keeps it
	// from interrupting the connection once the read is over.
	var mu sync.Mutex
	finished := false
	stop := context.AfterFunc(s.ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !finished {
			s.rc.interrupt()
		}
	})
	defer func() {
		mu.Lock()
		finished = true
		mu.Unlock()
		stop()
	}()

	bound := make([]any, len(args)) // never write to the caller's slice
	for i, a := range args {
		if t, ok := a.(time.Time); ok {
			a = t.UTC().Format("2006-01-02 15:04:05.999999999")
		}
		bound[i] = a
	}
	rows, err := s.conn.QueryContext(s.ctx, query, bound...)
	if err != nil {
		return store.Result{}, &readError{err}
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return store.Result{}, &readError{err}
	}
	res := store.Result{Columns: cols, Rows: [][]any{}}
	dest := make([]any, len(cols))
	for rows.Next() {
		if len(res.Rows) == maxRows {
			res.Truncated = true
			break
		}
		row := make([]any, len(cols))
		for i := range row {
			dest[i] = &row[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return store.Result{}, &readError{err}
		}
		for i, v := range row {
			if b, ok := v.([]byte); ok && utf8.Valid(b) {
				row[i] = string(b)
			}
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return store.Result{}, &readError{err}
	}
	// Close now, not deferred: the statement must be finished before the
	// session removes its filters.
	if err := rows.Close(); err != nil {
		return store.Result{}, &readError{err}
	}
	return res, nil
}
