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

// QueryLimits bound one warehouse query.
type QueryLimits struct {
	// Timeout cancels the query when it runs longer.
	Timeout time.Duration
	// MaxRows stops reading after this many rows and marks the result truncated.
	MaxRows int
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
	// query over its limits is cancelled (ErrQueryLimit).
	Query(ctx context.Context, limits QueryLimits, query string, args ...any) (Result, error)
	// Close releases connections.
	Close() error
}
