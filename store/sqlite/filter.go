package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// Access filters on the embedded warehouse.
//
// SQLite has no row-level security, and a view can stand in for a table
// only when the query names the table without its schema: a qualified name
// always means the attached file. So for a query with filters the session
// installs, on its own connection and for that query only:
//
//   - the analytics file attached a second time, read-only, under a name
//     made of 128 random bits (the source). The name exists only after the
//     query's text is fixed, so the text cannot name it;
//   - a TEMP table of the filters' values, inserted as bound parameters;
//   - for each filtered table T, a TEMP view named T: SELECT * FROM
//     source.T WHERE <every filter on T, ANDed>, comparing the quoted
//     column with values read from the TEMP table. TEMP is searched first,
//     so T in a query (or a view over it, a CTE, a join, a subquery, a
//     UNION) means the view.
//
// The authorizer then allows reads of source.T only through the view
// named T, reads of the values table only from inside such a view, and
// refuses every read of analytics.T: its message says to name the table
// without the schema. checkProgram refuses a program that opens a b-tree of
// T (table or index) through the analytics attachment, whatever the
// authorizer saw. A view in analytics.db over T is bound to the analytics
// schema by SQLite, so reading it is refused too; callers cannot create
// views of their own (writes are refused).
//
// Setting up and removing the filters needs writes to the TEMP schema:
// they run with query_only off and the authorizer in setup mode, as fixed
// statements of this file with every value bound, before and after the
// caller's statement, never while it compiles or runs. A connection whose
// filters could not be removed is discarded.

// filterPlan is what the filters of one call need on a connection: the
// filtered tables by name, each with its conditions.
type filterPlan struct {
	tables []filteredTable
}

type filteredTable struct {
	// name is the table's name as the catalog spells it; the view has it.
	name  string
	conds []filterCond
	// roots are the root pages of the table and its indexes in analytics.
	roots []int64
}

type filterCond struct {
	column string
	op     string
	values []any
}

// planFilters checks filters against the warehouse catalog and groups them
// by table. A filter that cannot be applied (not valid, a table that is not
// a table of the analytics schema, a column the table lacks) refuses the
// call: a filter is never skipped. No filters: a nil plan.
func (w *Warehouse) planFilters(ctx context.Context, filters []store.AccessFilter) (*filterPlan, error) {
	if len(filters) == 0 {
		return nil, nil
	}
	byTable := make(map[string]*filteredTable)
	for _, f := range filters {
		if err := f.Normalize(); err != nil {
			return nil, filterError(f, err)
		}
		schema, table, _ := f.SplitTable()
		if !strings.EqualFold(schema, store.SchemaAnalytics) {
			return nil, filterError(f, fmt.Errorf("schema %s has no tables a query may read", schema))
		}
		t, err := w.Describe(ctx, store.SchemaAnalytics, table)
		if errors.Is(err, store.ErrNotFound) {
			return nil, filterError(f, errors.New("the table does not exist"))
		}
		if err != nil {
			return nil, fmt.Errorf("access filter %s: %w", f.ID, err)
		}
		col, err := f.CheckTable(t)
		if err != nil {
			return nil, filterError(f, err)
		}
		ft := byTable[strings.ToLower(t.Name)]
		if ft == nil {
			ft = &filteredTable{name: t.Name}
			if ft.roots, err = w.rootPages(ctx, t.Name); err != nil {
				return nil, filterError(f, err)
			}
			byTable[strings.ToLower(t.Name)] = ft
		}
		ft.conds = append(ft.conds, filterCond{column: col, op: f.Operator, values: f.Values()})
	}
	plan := &filterPlan{}
	for _, ft := range byTable {
		plan.tables = append(plan.tables, *ft)
	}
	sort.Slice(plan.tables, func(i, j int) bool { return plan.tables[i].name < plan.tables[j].name })
	return plan, nil
}

// filterError refuses a call whose filter cannot be applied.
func filterError(f store.AccessFilter, err error) error {
	return fmt.Errorf("%w: the access filter on %s of group %s cannot be applied (%v); ask a workspace admin to fix it",
		store.ErrQueryRefused, f.Table, f.Group, err)
}

// rootPages returns the root pages of an analytics table and its indexes.
// Only a table can be filtered: a view of analytics.db is bound to its own
// schema and would read around the filter view.
func (w *Warehouse) rootPages(ctx context.Context, table string) ([]int64, error) {
	rows, err := w.meta.QueryContext(ctx, `SELECT type, rootpage FROM analytics.sqlite_schema
		WHERE tbl_name = ? COLLATE NOCASE AND type IN ('table', 'index', 'view')`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var roots []int64
	isTable := false
	for rows.Next() {
		var typ string
		var root int64
		if err := rows.Scan(&typ, &root); err != nil {
			return nil, err
		}
		if typ == "view" {
			return nil, errors.New("it is a view, and only tables can be filtered")
		}
		isTable = isTable || typ == "table"
		if root > 0 {
			roots = append(roots, root)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !isTable {
		return nil, errors.New("the table does not exist")
	}
	return roots, nil
}

// connFilters are the filters installed on one connection for one call.
type connFilters struct {
	// schema is the random name of the source attachment; values is the
	// TEMP table of filter values.
	schema, values string
	// views maps a filtered table's lowercased name to its name.
	views map[string]string
	// roots maps the root pages of the filtered tables and their indexes in
	// the analytics attachment to the table's name.
	roots map[int64]string
	// readable are the database indexes of TEMP and the source.
	readable map[int64]bool
}

// applyFilters installs plan on the connection. On error the connection
// may keep part of it and must be discarded. Only the goroutine that holds
// the connection (inside Raw) may call it.
func (c *warehouseConn) applyFilters(ctx context.Context, dir string, plan *filterPlan) (*connFilters, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	name := "ss_" + hex.EncodeToString(b[:])
	f := &connFilters{
		schema:   name,
		values:   name + "_values",
		views:    make(map[string]string),
		roots:    make(map[int64]string),
		readable: map[int64]bool{1: true}, // TEMP
	}
	c.state.setSetup(true)
	defer c.state.setSetup(false)

	u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, AnalyticsFile)), RawQuery: "mode=ro"}
	if err := c.exec(ctx, "ATTACH DATABASE ? AS "+name, u.String()); err != nil {
		return nil, fmt.Errorf("attach source: %w", err)
	}
	if err := c.exec(ctx, "PRAGMA query_only = 0"); err != nil {
		return nil, err
	}
	q := Dialect{}.QuoteIdent
	values := "temp." + q(f.values)
	if err := c.exec(ctx, "CREATE TEMP TABLE "+q(f.values)+" (f INTEGER NOT NULL, v)"); err != nil {
		return nil, fmt.Errorf("create values table: %w", err)
	}
	n := 0
	for _, t := range plan.tables {
		var where []string
		for _, cond := range t.conds {
			for _, v := range cond.values {
				if bv, ok := v.(bool); ok {
					v = int64(0)
					if bv {
						v = int64(1)
					}
				}
				if err := c.exec(ctx, "INSERT INTO "+values+" (f, v) VALUES (?, ?)", int64(n), v); err != nil {
					return nil, fmt.Errorf("insert filter value: %w", err)
				}
			}
			sub := "(SELECT v FROM " + values + " WHERE f = " + strconv.Itoa(n) + ")"
			col := q(cond.column)
			var expr string
			switch cond.op {
			case store.FilterEquals:
				expr = col + " = " + sub
			case store.FilterNotEquals:
				expr = col + " <> " + sub
			case store.FilterGreaterThan:
				expr = col + " > " + sub
			case store.FilterGreaterOrEqual:
				expr = col + " >= " + sub
			case store.FilterLessThan:
				expr = col + " < " + sub
			case store.FilterLessOrEqual:
				expr = col + " <= " + sub
			case store.FilterIn:
				expr = col + " IN " + sub
			case store.FilterNotIn:
				expr = col + " NOT IN " + sub
			default:
				return nil, fmt.Errorf("unknown filter operator %q", cond.op)
			}
			where = append(where, "("+expr+")")
			n++
		}
		view := "CREATE TEMP VIEW " + q(t.name) + " AS SELECT * FROM " + q(name) + "." + q(t.name) +
			" WHERE " + strings.Join(where, " AND ")
		if err := c.exec(ctx, view); err != nil {
			return nil, fmt.Errorf("create filter view %s: %w", t.name, err)
		}
		f.views[strings.ToLower(t.name)] = t.name
		for _, r := range t.roots {
			f.roots[r] = t.name
		}
	}
	if err := c.exec(ctx, "PRAGMA query_only = 1"); err != nil {
		return nil, err
	}
	schemas, err := databaseList(ctx, c.sqliteConn)
	if err != nil {
		return nil, err
	}
	for i, s := range schemas {
		if s == name {
			f.readable[i] = true
		}
	}
	if len(f.readable) != 2 {
		return nil, errors.New("source attachment not found")
	}
	c.state.setFilters(f)
	return f, nil
}

// removeFilters drops what applyFilters installed and restores query_only.
// On error the connection must be discarded.
func (c *warehouseConn) removeFilters(ctx context.Context, f *connFilters) error {
	c.state.setFilters(nil)
	c.state.setSetup(true)
	defer c.state.setSetup(false)
	q := Dialect{}.QuoteIdent
	if err := c.exec(ctx, "PRAGMA query_only = 0"); err != nil {
		return err
	}
	for _, v := range f.views {
		if err := c.exec(ctx, "DROP VIEW IF EXISTS temp."+q(v)); err != nil {
			return err
		}
	}
	if err := c.exec(ctx, "DROP TABLE IF EXISTS temp."+q(f.values)); err != nil {
		return err
	}
	if err := c.exec(ctx, "PRAGMA query_only = 1"); err != nil {
		return err
	}
	return c.exec(ctx, "DETACH DATABASE "+f.schema)
}

// exec runs one of this file's fixed statements with bound args.
func (c *warehouseConn) exec(ctx context.Context, query string, args ...any) error {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	_, err := c.ExecContext(ctx, query, named)
	return err
}

// filteredReason says why a read of a filtered table was refused, and how
// to read it instead.
func filteredReason(table string) string {
	if table == "" {
		return "the query reads a table with an access filter in a way the filter cannot follow"
	}
	return fmt.Sprintf("table %s.%s has an access filter for you: name it without the schema (%s) so only the rows you may see are read",
		store.SchemaAnalytics, table, table)
}

// filterRead decides a read under installed filters f: allowed, refused,
// or not about filters at all (decided is false).
func (f *connFilters) filterRead(table, column, dbName, view string) (ok, decided bool, reason string) {
	lt := strings.ToLower(table)
	name, filtered := f.views[lt]
	switch {
	case dbName == f.schema:
		// The source: only from inside the filter view of the same table.
		// A read for rows alone (no column) comes after SQLite flattened
		// the view into the query, with no view name; the source's name
		// cannot be in a caller's text, so it is the view's.
		if filtered && (column == "" || strings.EqualFold(view, name)) {
			return true, true, ""
		}
		return false, true, fmt.Sprintf("table %s.%s may not be read", store.SchemaAnalytics, table)
	case dbName == "temp":
		if filtered {
			return true, true, "" // the filter view's own columns
		}
		if strings.EqualFold(table, f.values) {
			if _, fromView := f.views[strings.ToLower(view)]; fromView {
				return true, true, ""
			}
		}
		return false, false, ""
	case dbName == store.SchemaAnalytics && filtered:
		return false, true, filteredReason(name)
	}
	return false, false, ""
}
