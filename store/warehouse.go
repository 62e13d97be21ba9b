package store

import (
	"context"
	"errors"
	"time"
)

// Warehouse errors.
var (
	// ErrQueryLimit means a query hit its timeout and was cancelled.
	ErrQueryLimit = errors.New("query limit reached")
	// ErrQueryRefused means the engine refused a statement (a write, a
	// forbidden table, more than one statement).
	ErrQueryRefused = errors.New("query refused")
)

// Warehouse schemas (DESIGN.md section 9).
const (
	SchemaAnalytics = "analytics"
	SchemaPlanner   = "cdp_planner"
	SchemaAudit     = "cdp_audit"
)

// Table describes a warehouse table or view.
type Table struct {
	Schema   string   `json:"schema"`
	Name     string   `json:"name"`
	Columns  []Column `json:"columns,omitempty"`
	RowCount *int64   `json:"row_count,omitempty"`
}

// QualifiedName is "schema.table".
func (t Table) QualifiedName() string { return t.Schema + "." + t.Name }

// QueryLimits bound one warehouse query: how long it may run, how many rows
// it returns, and which rows it may see.
type QueryLimits struct {
	// Timeout cancels the query when it runs longer.
	Timeout time.Duration
	// MaxRows stops reading after this many rows and marks the result truncated.
	MaxRows int
	// Filters are the access filters of the principal the query runs for
	// (Store.AccessFiltersFor). The engine lets the query see only the
	// rows of each filtered table that pass every filter on it, whatever
	// the SQL says, or refuses the query. None: all rows. A caller that
	// runs a query for a principal must pass that principal's filters.
	Filters []AccessFilter
	// Key and Human name whom the query runs for: the principal's KeyID
	// and Human(). The caps on concurrent queries in front of the
	// warehouse count by them; the engines ignore them.
	Key, Human string
}

// Result is the outcome of a read query.
type Result struct {
	Columns   []string `json:"columns"`
	Rows      [][]any  `json:"rows"`
	Truncated bool     `json:"truncated"`
}

// Dialect quotes identifiers and names the engine, so SQL built from typed
// definitions fits the warehouse that runs it.
type Dialect interface {
	// Name is "sqlite" or "trino".
	Name() string
	// QuoteIdent quotes one identifier (no dots).
	QuoteIdent(name string) string
}

// TableNamer is implemented by a Dialect that names warehouse tables in a
// way of its own in generated SQL. The SQLite warehouse's dialect names
// tables of the analytics schema without the schema, which is how its
// access filters apply (a schema-qualified read of a filtered table is
// refused). Model.Relation uses it when the dialect has it; SQL generated
// from typed definitions should name tables through it too.
type TableNamer interface {
	// TableName returns the SQL that names table of schema.
	TableName(schema, table string) string
}

// Warehouse is where customer data lives. The embedded SQLite warehouse and
// the Trino warehouse implement it; callers never depend on which.
type Warehouse interface {
	// Dialect returns the SQL dialect of the engine.
	Dialect() Dialect
	// Tables lists the tables callers may read (the analytics schema),
	// without columns.
	Tables(ctx context.Context) ([]Table, error)
	// Describe returns a table with its columns; ErrNotFound if it does not
	// exist or may not be read.
	Describe(ctx context.Context, schema, name string) (Table, error)
	// Query runs one read-only statement with bound arguments. Writes and
	// reads outside the analytics schema are refused (ErrQueryRefused); a
	// query over its limits is cancelled (ErrQueryLimit). limits.Filters
	// restrict the rows it sees. The engine's failures are QueryErrors,
	// whose messages never quote the data.
	Query(ctx context.Context, limits QueryLimits, query string, args ...any) (Result, error)
	// CheckSQL checks a SQL model's query without running it to completion
	// and returns its result columns, with types mapped to the model column
	// types (ColumnType) and Nullable true, and each column's Lineage and
	// Sources as the engine traces them (see LineageColumn,
	// LineageExpression), from which its PII level is derived. The query must be one read-only
	// SELECT over the analytics schema that also works as a subquery in the
	// form Model.Relation gives it; the check runs with limits (its filters
	// too, so a query the caller could not run is refused here). Errors are
	// those of Query: ErrQueryRefused for SQL the engine refuses (a write, a
	// second statement, a forbidden table or function, a trailing
	// semicolon or comment that breaks the subquery, duplicate column
	// names), ErrInvalid for SQL it cannot compile, ErrQueryLimit when the
	// check ran out of time.
	CheckSQL(ctx context.Context, limits QueryLimits, query string) ([]Column, error)
	// Close releases connections.
	Close() error
}
