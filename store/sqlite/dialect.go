package sqlite

import (
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// Compile-time checks that Dialect implements store.Dialect and names tables
// for access filters.
var (
	_ store.Dialect    = Dialect{}
	_ store.TableNamer = Dialect{}
)

// Dialect is SQLite's SQL dialect, for SQL built from typed definitions to
// run on the embedded warehouse.
type Dialect struct{}

// Name returns "sqlite".
func (Dialect) Name() string { return "sqlite" }

// QuoteIdent quotes one identifier (no dots) in double quotes, doubling the
// double quotes inside it, so any name is one identifier to SQLite.
func (Dialect) QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// TableName names a warehouse table for generated SQL. A table of the
// analytics schema is named without the schema: TEMP is searched first, so
// the access filter view of a filtered table stands in for it, and without
// filters the name finds the analytics table (attached first, and the
// private main database is empty). Other schemas keep their name, and
// reads of them are refused anyway.
func (d Dialect) TableName(schema, table string) string {
	if strings.EqualFold(schema, store.SchemaAnalytics) {
		return d.QuoteIdent(table)
	}
	return d.QuoteIdent(schema) + "." + d.QuoteIdent(table)
}
