package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	"modernc.org/libc"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/signalsmith/agent-server/store"
)

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
