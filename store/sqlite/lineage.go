package sqlite

import (
	"context"
	"slices"
	"sync"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/signalsmith/agent-server/store"
)

// Lineage of a SQL model's columns.
//
// A model column's PII level is derived from the warehouse columns it
// reads (DESIGN.md section 3), so the warehouse must say, from the engine,
// where each result column comes from; reading the SQL's text would be
// string matching. Two things SQLite reports while it compiles a statement
// give the answer:
//
//   - the authorizer is called for every column the statement reads
//     (SQLITE_READ, with its table and database), wherever the column
//     appears: the result, WHERE, a join, a function's argument, a
//     subquery, a CTE, a window;
//   - sqlite3_column_database_name, _table_name and _origin_name name the
//     table column a result column is, when it is a plain column reference
//     (also renamed, email AS x, or through a subquery SQLite flattened).
//
// The origin alone cannot be trusted for every query: for a compound
// SELECT (UNION) SQLite names the origin of the first arm only, so
// "SELECT city FROM customers UNION SELECT email FROM customers" would
// claim city. The authorizer is also called once for every SELECT the
// statement compiles (SQLITE_SELECT): a compound, a subquery it did not
// flatten, a CTE, a scalar subquery or a rewritten window query each add
// one. So a result column is a plain reference (store.LineageColumn) only
// when the statement compiles as exactly one SELECT and SQLite names an
// analytics column as its origin; every other column is an expression
// (store.LineageExpression) whose sources are every column the statement
// reads. That over-approximates (a narrow query keeps narrow sources) and
// never under-approximates.
//
// A plain column's values come from its source, but which rows the query
// returns can come from any column it reads: SELECT customer_id FROM
// customers WHERE unicode(notes) = 76 shows only ids, yet each row says
// something of a note. So a source column the statement references more
// often than its plain result columns are that column (the authorizer is
// called once per reference) guards every plain column (Column.Guards):
// when a guard is blocked, so is the column, and the model is blocked
// whole. References beyond the plain ones may also sit in an expression
// of the result rather than a filter; the rule cannot tell them apart and
// blocks those models too, which only ever hides more.
//
// The lineage is taken from a separate compilation without access filters,
// so the filter views' own reads do not count as the query's; nothing of
// that compilation runs.

// lineageRecorder collects what the authorizer reports while one
// statement compiles.
type lineageRecorder struct {
	mu sync.Mutex
	// reads counts the references to each source column: the authorizer
	// is called once for every reference SQLite resolves.
	reads   map[string]int
	selects int
	// done is set once the first statement is compiled: compiling it again
	// (sqlite3_stmt_explain does) or a second statement must not count.
	done bool
}

func (r *lineageRecorder) noteSelect() {
	r.mu.Lock()
	if !r.done {
		r.selects++
	}
	r.mu.Unlock()
}

func (r *lineageRecorder) stop() {
	r.mu.Lock()
	r.done = true
	r.mu.Unlock()
}

func (r *lineageRecorder) noteRead(schema, table, column string) {
	if column == "" || schema != store.SchemaAnalytics {
		return // a read for rows alone, or not a warehouse source column
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	r.reads[store.SourceColumn(schema, table, column)]++
}

func (s *authState) setRecorder(r *lineageRecorder) {
	s.mu.Lock()
	s.lineage = r
	s.mu.Unlock()
}

func (s *authState) recorder() *lineageRecorder {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lineage
}

// columnOrigin names the table column a prepared statement's result column
// i is a plain reference to, as SQLite traces it; empty parts when it is
// an expression.
func columnOrigin(tls *libc.TLS, stmt uintptr, i int32) (schema, table, column string) {
	return libc.GoString(sqlite3.Xsqlite3_column_database_name(tls, stmt, i)),
		libc.GoString(sqlite3.Xsqlite3_column_table_name(tls, stmt, i)),
		libc.GoString(sqlite3.Xsqlite3_column_origin_name(tls, stmt, i))
}

// lineage compiles query once more, without access filters and without
// running it, and returns each result column's lineage and sources.
func (w *Warehouse) lineage(ctx context.Context, query string) ([]store.Column, error) {
	var cols []store.Column
	err := w.session(ctx, store.QueryLimits{}, func(s *session) error {
		rec := &lineageRecorder{reads: make(map[string]int)}
		s.rc.state.setRecorder(rec)
		defer s.rc.state.setRecorder(nil)
		info, err := s.check(query)
		if err != nil {
			return err
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		all := make([]string, 0, len(rec.reads))
		for ref := range rec.reads {
			all = append(all, ref)
		}
		slices.Sort(all)
		cols = make([]store.Column, len(info.columns))
		plain := make(map[string]int)
		for i, c := range info.columns {
			cols[i] = store.Column{Name: c.name, Lineage: store.LineageExpression, Sources: all}
			if rec.selects == 1 && c.originSchema == store.SchemaAnalytics && c.originTable != "" && c.originColumn != "" {
				src := store.SourceColumn(c.originSchema, c.originTable, c.originColumn)
				cols[i].Lineage = store.LineageColumn
				cols[i].Sources = []string{src}
				plain[src]++
			}
		}
		// A source column referenced more often than the plain result
		// columns that are it is read somewhere else too: in WHERE, a
		// join, GROUP BY, ORDER BY, or an expression. It may choose which
		// rows there are, so it guards every plain column.
		var guards []string
		for _, ref := range all {
			if rec.reads[ref] > plain[ref] {
				guards = append(guards, ref)
			}
		}
		for i := range cols {
			if cols[i].Lineage == store.LineageColumn && len(guards) > 0 {
				cols[i].Guards = guards
			}
		}
		return nil
	})
	return cols, err
}
