package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

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
// warehouse folder). analytics.db must exist (GenerateDemo writes it; the
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
// row count comes from the statistics ANALYZE leaves (GenerateDemo runs it)
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

// Connections.

// sqliteConn is what database/sql uses of a modernc.org/sqlite connection;
// warehouseConn embeds it so every optional interface stays visible.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// warehouseConn is a warehouse connection: the driver's connection plus
// what the warehouse needs beside it.
type warehouseConn struct {
	sqliteConn
	// db is the connection's sqlite3 handle, for preparing statements to
	// count them and for interrupting reads. The driver does not export it;
	// handleOf reads it.
	db uintptr
	// lock is the driver connection's own mutex, which its Close and
	// interrupt hold.
	lock  sync.Locker
	state *authState
	// schemas names the connection's databases by index, and readable
	// holds the indexes a query's program may open: main (private to the
	// connection and empty; the JSON table-valued functions live there) and
	// analytics.
	schemas  map[int64]string
	readable map[int64]bool
}

// handleOf returns the sqlite3 handle of a modernc.org/sqlite connection (its
// unexported field db), or an error when the driver's layout changed: then
// OpenWarehouse fails rather than run without a way to interrupt queries.
func handleOf(dc driver.Conn) (uintptr, error) {
	v := reflect.ValueOf(dc)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return 0, fmt.Errorf("unexpected driver connection %T", dc)
	}
	f := v.Elem().FieldByName("db")
	if !f.IsValid() || f.Kind() != reflect.Uintptr {
		return 0, fmt.Errorf("driver connection %T has no sqlite3 handle", dc)
	}
	return uintptr(f.Uint()), nil
}

// interrupt stops the statement running on the connection, as
// sqlite3_interrupt does. It holds the driver's lock, as the driver's own
// interrupt does, so it cannot race with the connection closing.
func (c *warehouseConn) interrupt() {
	c.lock.Lock()
	defer c.lock.Unlock()
	db, err := handleOf(c.sqliteConn)
	if err != nil || db == 0 {
		return
	}
	tls := libc.NewTLS()
	defer tls.Close()
	sqlite3.Xsqlite3_interrupt(tls, db)
}

// cPtrSize is the size of a C pointer.
const cPtrSize = int(unsafe.Sizeof(uintptr(0)))

// checkStatement decides, with SQLite's own parser and compiler, whether
// query may run; nothing it prepares is ever run. It prepares the text with
// sqlite3_prepare_v2 on this connection, under its authorizer, then:
//
//   - prepares the tail again until it is used up: the driver would run
//     every statement of a script, so a second statement is refused;
//   - requires sqlite3_stmt_readonly;
//   - lists the compiled program (sqlite3_stmt_explain) and refuses it if
//     it opens a table of a database other than analytics (or the private,
//     empty main), or, with access filters installed, a table or index of
//     a filtered table other than through the filter views. The authorizer
//     names every column read, but a table read for its rows alone (SELECT
//     count(*) FROM t) is reported with the schema as written, empty when
//     unqualified, which the authorizer cannot tell from a CTE; the program
//     is unambiguous.
//
// It returns the statement's result columns. Refusals wrap
// store.ErrQueryRefused with the reason; a statement SQLite cannot compile
// is store.ErrInvalid. Only the goroutine that holds the connection (inside
// Raw) may call it.
func (c *warehouseConn) checkStatement(query string) (stmtInfo, error) {
	c.state.reset()
	tls := libc.NewTLS()
	defer tls.Close()
	zSQL, err := libc.CString(query)
	if err != nil {
		return stmtInfo{}, err
	}
	defer libc.Xfree(tls, zSQL)
	pp := tls.Alloc(2 * cPtrSize)
	defer tls.Free(2 * cPtrSize)
	ppStmt, ppTail := pp, pp+uintptr(cPtrSize)
	end := zSQL + uintptr(len(query))

	var first uintptr // the one statement, kept for the checks below
	defer func() {
		if first != 0 {
			sqlite3.Xsqlite3_finalize(tls, first)
		}
	}()
	for p := zSQL; p < end; {
		rc := sqlite3.Xsqlite3_prepare_v2(tls, c.db, p, -1, ppStmt, ppTail)
		if rc != sqlite3.SQLITE_OK {
			if first != 0 {
				return stmtInfo{}, fmt.Errorf("%w: only one statement is allowed", store.ErrQueryRefused)
			}
			return stmtInfo{}, c.prepareError(tls, rc, query)
		}
		stmt, tail := readPointer(ppStmt), readPointer(ppTail)
		if stmt != 0 {
			if first != 0 {
				sqlite3.Xsqlite3_finalize(tls, stmt)
				return stmtInfo{}, fmt.Errorf("%w: only one statement is allowed", store.ErrQueryRefused)
			}
			first = stmt
			if rec := c.state.recorder(); rec != nil {
				rec.stop() // the lineage is the first compilation's
			}
		}
		if tail <= p {
			break // nothing consumed: cannot happen, but never loop forever
		}
		p = tail
	}
	if first == 0 {
		return stmtInfo{}, fmt.Errorf("query: the text has no SQL statement: %w", store.ErrInvalid)
	}
	if sqlite3.Xsqlite3_stmt_readonly(tls, first) == 0 {
		return stmtInfo{}, fmt.Errorf("%w: writes are not allowed", store.ErrQueryRefused)
	}
	// The columns, before explain mode replaces them with its own.
	n := sqlite3.Xsqlite3_column_count(tls, first)
	info := stmtInfo{columns: make([]stmtColumn, n)}
	for i := range n {
		info.columns[i] = stmtColumn{
			name:     libc.GoString(sqlite3.Xsqlite3_column_name(tls, first, i)),
			declType: libc.GoString(sqlite3.Xsqlite3_column_decltype(tls, first, i)),
		}
		c := &info.columns[i]
		c.originSchema, c.originTable, c.originColumn = columnOrigin(tls, first, i)
	}
	return info, c.checkProgram(tls, first)
}

// stmtInfo describes a prepared statement's result.
type stmtInfo struct {
	columns []stmtColumn
}

// stmtColumn is one result column: its name, and the declared type and
// the schema, table and name of the table column it is a plain reference
// to, empty for an expression.
type stmtColumn struct {
	name, declType                          string
	originSchema, originTable, originColumn string
}

// checkProgram lists the bytecode of a prepared statement and refuses it if
// it opens a b-tree, or starts a transaction, in a database other than
// those in c.readable (and, while access filters are installed, the filter
// views' own), or opens one for writing, or opens a b-tree of a filtered
// table through the analytics schema.
func (c *warehouseConn) checkProgram(tls *libc.TLS, stmt uintptr) error {
	if rc := sqlite3.Xsqlite3_stmt_explain(tls, stmt, 1); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("query: explain: %s (%d)", libc.GoString(sqlite3.Xsqlite3_errmsg(tls, c.db)), rc)
	}
	f := c.state.filters()
	for {
		switch rc := sqlite3.Xsqlite3_step(tls, stmt); rc {
		case sqlite3.SQLITE_DONE:
			return nil
		case sqlite3.SQLITE_ROW:
		default:
			return fmt.Errorf("query: explain: %s (%d)", libc.GoString(sqlite3.Xsqlite3_errmsg(tls, c.db)), rc)
		}
		// Columns: addr, opcode, p1, p2, p3, p4, p5, comment.
		var db int64
		switch op := libc.GoString(sqlite3.Xsqlite3_column_text(tls, stmt, 1)); op {
		case "Transaction":
			db = sqlite3.Xsqlite3_column_int64(tls, stmt, 2)
			if sqlite3.Xsqlite3_column_int64(tls, stmt, 3) != 0 {
				return fmt.Errorf("%w: writes are not allowed", store.ErrQueryRefused)
			}
		case "OpenRead", "ReopenIdx":
			db = sqlite3.Xsqlite3_column_int64(tls, stmt, 4)
			if f != nil && c.schemas[db] == store.SchemaAnalytics {
				// OPFLAG_P2ISREG in P5: the root page is in a register,
				// so which b-tree it opens is unknown.
				root := sqlite3.Xsqlite3_column_int64(tls, stmt, 3)
				if sqlite3.Xsqlite3_column_int64(tls, stmt, 6)&sqlite3.OPFLAG_P2ISREG != 0 || f.roots[root] != "" {
					return fmt.Errorf("%w: %s", store.ErrQueryRefused, filteredReason(f.roots[root]))
				}
			}
		case "OpenWrite":
			return fmt.Errorf("%w: writes are not allowed", store.ErrQueryRefused)
		default:
			continue
		}
		if !c.readable[db] && (f == nil || !f.readable[db]) {
			name := c.schemas[db]
			if name == "" {
				name = strconv.FormatInt(db, 10)
			}
			return fmt.Errorf("%w: tables of %s may not be read", store.ErrQueryRefused, name)
		}
	}
}

// prepareError maps a failed sqlite3_prepare_v2 of query. A denial by the
// authorizer is a refusal, whatever code SQLite reports it with
// (SQLITE_AUTH for tables, SQLITE_ERROR for functions); anything else is
// described by compileError, never in SQLite's own words.
func (c *warehouseConn) prepareError(tls *libc.TLS, rc int32, query string) error {
	if reason := c.state.reason(); reason != "" {
		return fmt.Errorf("%w: %s", store.ErrQueryRefused, reason)
	}
	if rc&0xff == sqlite3.SQLITE_AUTH {
		return fmt.Errorf("%w: the statement is not allowed", store.ErrQueryRefused)
	}
	return compileError(query, libc.GoString(sqlite3.Xsqlite3_errmsg(tls, c.db)), rc)
}

// readPointer reads a C pointer from C memory at p, by copying its bytes.
func readPointer(p uintptr) uintptr {
	b := libc.GoBytes(p, cPtrSize)
	if cPtrSize == 8 {
		return uintptr(binary.NativeEndian.Uint64(b))
	}
	return uintptr(binary.NativeEndian.Uint32(b))
}

// warehouseConnector opens warehouse connections: an in-memory main
// database with the three files attached read-only, query_only, and an
// authorizer installed after the attachments (so they, and the lookups of
// the database and module lists, are the only statements that run without
// it).
type warehouseConnector struct {
	base   driver.Connector
	dir    string
	policy func(*authState) sqlite.AuthorizerFn
}

// Limits on every warehouse connection: a value or a query text larger than
// these is refused, so one query cannot take the server's memory.
const (
	maxValueBytes = 16 << 20
	maxSQLBytes   = 1 << 20
)

// openWarehousePool opens a pool of warehouse connections under policy and checks
// that one connection opens.
func openWarehousePool(ctx context.Context, dir string, policy func(*authState) sqlite.AuthorizerFn, size int) (*sql.DB, error) {
	// The main database is private to each connection and empty. Double
	// quotes are identifiers only (_dqs=0), as in Trino: a misspelt quoted
	// column is an error, not a string. Defensive mode forbids what could
	// corrupt a file even if a write got through.
	q := url.Values{}
	q.Set("_dqs", "0")
	q.Set("_defensive", "1")
	q.Set("_time_format", "sqlite")
	q.Add("_pragma", "query_only(1)")
	q.Add("_pragma", "trusted_schema(0)")
	// The audit shipper (or another process) may be writing cdp_audit.db
	// while a connection attaches it: wait for the lock, as the store does.
	q.Add("_pragma", "busy_timeout(5000)")
	base, err := sqlite.NewConnector("file::memory:?" + q.Encode())
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(&warehouseConnector{base: base, dir: dir, policy: policy})
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Driver implements driver.Connector.
func (c *warehouseConnector) Driver() driver.Driver { return c.base.Driver() }

// Connect implements driver.Connector.
func (c *warehouseConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	rc, err := c.setup(ctx, dc)
	if err != nil {
		dc.Close()
		return nil, fmt.Errorf("open warehouse connection: %w", err)
	}
	return rc, nil
}

// setup attaches the warehouse files and installs the authorizer.
func (c *warehouseConnector) setup(ctx context.Context, dc driver.Conn) (*warehouseConn, error) {
	sc, ok := dc.(sqliteConn)
	if !ok {
		return nil, fmt.Errorf("unexpected driver connection %T", dc)
	}
	lock, ok := dc.(sync.Locker)
	if !ok {
		return nil, fmt.Errorf("driver connection %T has no lock", dc)
	}
	reg, ok := dc.(sqlite.AuthorizerRegisterer)
	if !ok {
		return nil, fmt.Errorf("driver connection %T has no authorizer", dc)
	}
	db, err := handleOf(dc)
	if err != nil {
		return nil, err
	}
	if err := attachWarehouse(ctx, sc, c.dir); err != nil {
		return nil, err
	}
	schemas, err := databaseList(ctx, sc)
	if err != nil {
		return nil, err
	}
	readable := make(map[int64]bool)
	for i, name := range schemas {
		readable[i] = name == "main" || name == store.SchemaAnalytics
	}
	tls := libc.NewTLS()
	sqlite3.Xsqlite3_limit(tls, db, sqlite3.SQLITE_LIMIT_LENGTH, maxValueBytes)
	sqlite3.Xsqlite3_limit(tls, db, sqlite3.SQLITE_LIMIT_SQL_LENGTH, maxSQLBytes)
	tls.Close()
	modules, err := moduleList(ctx, sc)
	if err != nil {
		return nil, err
	}
	state := &authState{modules: modules}
	if err := reg.RegisterAuthorizer(c.policy(state)); err != nil {
		return nil, err
	}
	return &warehouseConn{sqliteConn: sc, db: db, lock: lock, state: state, schemas: schemas, readable: readable}, nil
}

// databaseList returns the connection's databases by index.
func databaseList(ctx context.Context, conn driver.QueryerContext) (map[int64]string, error) {
	rows, err := driverRows(ctx, conn, "SELECT seq, name FROM pragma_database_list", 2)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	schemas := make(map[int64]string)
	for _, v := range rows {
		seq, ok1 := v[0].(int64)
		name, ok2 := v[1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("list databases: unexpected row %v", v)
		}
		schemas[seq] = name
	}
	return schemas, nil
}

// moduleList returns the names of the virtual table modules the connection
// knows, lowercased.
func moduleList(ctx context.Context, conn driver.QueryerContext) (map[string]bool, error) {
	rows, err := driverRows(ctx, conn, "SELECT name FROM pragma_module_list", 1)
	if err != nil {
		return nil, fmt.Errorf("list modules: %w", err)
	}
	modules := make(map[string]bool)
	for _, v := range rows {
		name, ok := v[0].(string)
		if !ok {
			return nil, fmt.Errorf("list modules: unexpected row %v", v)
		}
		modules[strings.ToLower(name)] = true
	}
	return modules, nil
}

// driverRows runs a query on a driver connection during its setup and
// returns every row.
func driverRows(ctx context.Context, conn driver.QueryerContext, query string, width int) ([][]driver.Value, error) {
	rows, err := conn.QueryContext(ctx, query, nil)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var all [][]driver.Value
	for {
		v := make([]driver.Value, width)
		err := rows.Next(v)
		if errors.Is(err, io.EOF) {
			return all, nil
		}
		if err != nil {
			return nil, err
		}
		all = append(all, v)
	}
}

// warehouseSchemas are the attached schemas and their files, in attach
// order (which is also the search order for unqualified table names).
var warehouseSchemas = []struct{ schema, file string }{
	{store.SchemaAnalytics, AnalyticsFile},
	{store.SchemaPlanner, PlannerFile},
	{store.SchemaAudit, AuditFile},
}

// attachWarehouse attaches the three files read-only. mode=ro only applies
// to a file: URI; url.URL escapes the characters that would end the path.
func attachWarehouse(ctx context.Context, conn driver.ExecerContext, dir string) error {
	for _, s := range warehouseSchemas {
		u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, s.file)), RawQuery: "mode=ro"}
		// The schema name is a constant; the file name is a bound value.
		_, err := conn.ExecContext(ctx, "ATTACH DATABASE ? AS "+s.schema,
			[]driver.NamedValue{{Ordinal: 1, Value: u.String()}})
		if err != nil {
			return fmt.Errorf("attach %s: %w", s.file, err)
		}
	}
	return nil
}

// Authorization.

// authState records why the authorizer denied the statement being
// compiled, so the error can say what was refused.
type authState struct {
	// modules are the connection's virtual table modules, lowercased:
	// names a query may not read without a schema, since eponymous ones
	// such as sqlite_dbpage read any database.
	modules map[string]bool

	mu   sync.Mutex
	last string
	// setup is true while the warehouse runs its own fixed statements
	// that install or remove access filters (applyFilters): everything is
	// allowed then, and only then.
	setup bool
	// filter holds the access filters installed for the current call.
	filter *connFilters
	// lineage, while set, records the reads of the statement being
	// compiled (lineage.go).
	lineage *lineageRecorder
}

func (s *authState) setSetup(on bool) {
	s.mu.Lock()
	s.setup = on
	s.mu.Unlock()
}

func (s *authState) setFilters(f *connFilters) {
	s.mu.Lock()
	s.filter = f
	s.mu.Unlock()
}

// filters returns the installed access filters, nil when there are none.
func (s *authState) filters() *connFilters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.filter
}

func (s *authState) inSetup() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setup
}

// special reports whether name is an internal table or a virtual table
// module rather than a table or CTE of the query's own.
func (s *authState) special(name string) bool {
	n := strings.ToLower(name)
	if n == "json_each" || n == "json_tree" {
		return false
	}
	return s.modules[n] || n == "dbstat" || strings.HasPrefix(n, "sqlite_") || strings.HasPrefix(n, "pragma_")
}

func (s *authState) deny(reason string) sqlite.AuthorizerReturnCode {
	s.mu.Lock()
	s.last = reason
	s.mu.Unlock()
	return sqlite.AuthorizerDeny
}

func (s *authState) reset() {
	s.mu.Lock()
	s.last = ""
	s.mu.Unlock()
}

func (s *authState) reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// queryPolicy is the authorizer of callers' queries, an allow-list: SELECT,
// recursive CTEs, reads of tables of the analytics schema (not its sqlite_
// tables), the JSON table-valued functions, and the functions in
// allowedFunctions. With access filters installed, reads of a filtered
// table go through its filter view only (connFilters.filterRead).
// Everything else is denied, with a reason. While the warehouse installs or
// removes filters (setup), its own fixed statements are allowed.
func queryPolicy(s *authState) sqlite.AuthorizerFn {
	return func(action sqlite.AuthorizerActionCode, arg1, arg2, dbName, view string) sqlite.AuthorizerReturnCode {
		if s.inSetup() {
			return sqlite.AuthorizerOK
		}
		rec := s.recorder()
		switch action {
		case sqlite.AuthSelect, sqlite.AuthRecursive:
			if rec != nil && action == sqlite.AuthSelect {
				rec.noteSelect()
			}
			return sqlite.AuthorizerOK
		case sqlite.AuthRead:
			if rec != nil {
				rec.noteRead(dbName, arg1, arg2)
			}
			if f := s.filters(); f != nil {
				if ok, decided, reason := f.filterRead(arg1, arg2, dbName, view); decided {
					if ok {
						return sqlite.AuthorizerOK
					}
					return s.deny(reason)
				}
			}
			if analyticsReadable(dbName, arg1) {
				return sqlite.AuthorizerOK
			}
			if dbName == "" && arg2 == "" && !s.special(arg1) {
				// A table or CTE read for its rows alone, named without a
				// schema: checkProgram sees which database it really is.
				return sqlite.AuthorizerOK
			}
			return s.deny(fmt.Sprintf("table %s may not be read", qualified(dbName, arg1)))
		case sqlite.AuthFunction:
			if allowedFunctions[strings.ToLower(arg2)] {
				return sqlite.AuthorizerOK
			}
			return s.deny(fmt.Sprintf("function %s is not allowed", arg2))
		}
		return s.deny(deniedReason(action))
	}
}

// qualified is schema.table, or table when the schema is unknown.
func qualified(schema, table string) string {
	if schema == "" {
		return table
	}
	return schema + "." + table
}

// analyticsReadable reports whether callers may read table in schema.
func analyticsReadable(schema, table string) bool {
	switch {
	case schema == store.SchemaAnalytics:
		t := strings.ToLower(table)
		return !strings.HasPrefix(t, "sqlite_") && t != "dbstat"
	case schema == "main":
		// json_each and json_tree are eponymous virtual tables: they read
		// their arguments, not a database.
		t := strings.ToLower(table)
		return t == "json_each" || t == "json_tree"
	}
	return false
}

// catalogPolicy is the authorizer of the catalog pool, which runs only the
// fixed statements of Tables and Describe: it may also read the analytics
// schema's sqlite_ tables and its table_xinfo pragma.
func catalogPolicy(s *authState) sqlite.AuthorizerFn {
	return func(action sqlite.AuthorizerActionCode, arg1, arg2, dbName, _ string) sqlite.AuthorizerReturnCode {
		switch action {
		case sqlite.AuthSelect:
			return sqlite.AuthorizerOK
		case sqlite.AuthRead:
			if dbName == store.SchemaAnalytics || (dbName == "main" && arg1 == "pragma_table_xinfo") {
				return sqlite.AuthorizerOK
			}
			return s.deny(fmt.Sprintf("table %s.%s may not be read", dbName, arg1))
		case sqlite.AuthPragma:
			if arg1 == "table_xinfo" && dbName == store.SchemaAnalytics {
				return sqlite.AuthorizerOK
			}
		case sqlite.AuthFunction:
			if allowedFunctions[strings.ToLower(arg2)] {
				return sqlite.AuthorizerOK
			}
		}
		return s.deny(deniedReason(action))
	}
}

// deniedReason says, for an error message, what kind of statement an
// action belongs to.
func deniedReason(action sqlite.AuthorizerActionCode) string {
	switch action {
	case sqlite.AuthInsert, sqlite.AuthUpdate, sqlite.AuthDelete,
		sqlite.AuthCreateIndex, sqlite.AuthCreateTable, sqlite.AuthCreateTempIndex,
		sqlite.AuthCreateTempTable, sqlite.AuthCreateTempTrigger, sqlite.AuthCreateTempView,
		sqlite.AuthCreateTrigger, sqlite.AuthCreateView, sqlite.AuthCreateVTable,
		sqlite.AuthDropIndex, sqlite.AuthDropTable, sqlite.AuthDropTempIndex,
		sqlite.AuthDropTempTable, sqlite.AuthDropTempTrigger, sqlite.AuthDropTempView,
		sqlite.AuthDropTrigger, sqlite.AuthDropView, sqlite.AuthDropVTable,
		sqlite.AuthAlterTable, sqlite.AuthReindex, sqlite.AuthAnalyze:
		return "writes are not allowed"
	case sqlite.AuthAttach, sqlite.AuthDetach:
		// VACUUM attaches its target database, so it lands here too.
		return "attaching or detaching a database is not allowed"
	case sqlite.AuthPragma:
		return "PRAGMA statements are not allowed"
	case sqlite.AuthTransaction, sqlite.AuthSavepoint:
		return "transaction control is not allowed"
	}
	return fmt.Sprintf("operation %d is not allowed", action)
}

// allowedFunctions are the SQL functions a query may call: SQLite's core
// scalar, date, math, JSON, aggregate and window functions. Left out on
// purpose: load_extension, anything that reveals or changes the connection
// (changes, last_insert_rowid, sqlite_version, sqlite_compileoption_*,
// sqlite_offset), and randomblob and zeroblob, which only make big values.
var allowedFunctions = func() map[string]bool {
	names := []string{
		// scalar
		"abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex",
		"if", "iif", "ifnull", "instr", "length", "like", "likelihood", "likely",
		"lower", "ltrim", "max", "min", "nullif", "octet_length", "printf", "quote",
		"random", "replace", "round", "rtrim", "sign", "soundex", "substr",
		"substring", "trim", "typeof", "unhex", "unicode", "unistr", "unlikely", "upper",
		// date and time
		"date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
		"current_date", "current_time", "current_timestamp",
		// math
		"acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling",
		"cos", "cosh", "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod",
		"pi", "pow", "power", "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
		// JSON
		"json", "json_array", "json_array_length", "json_error_position", "json_extract",
		"json_insert", "json_object", "json_patch", "json_pretty", "json_quote",
		"json_remove", "json_replace", "json_set", "json_type", "json_valid", "->", "->>",
		"json_each", "json_tree",
		// aggregate
		"avg", "count", "group_concat", "string_agg", "sum", "total",
		"json_group_array", "json_group_object",
		// window
		"row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile",
		"lag", "lead", "first_value", "last_value", "nth_value",
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}()
