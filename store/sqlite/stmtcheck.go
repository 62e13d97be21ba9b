package sqlite

import (
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/signalsmith/agent-server/store"
)

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
