package sqlite

import (
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// Compile-time check that Dialect implements store.Dialect.
var _ store.Dialect = Dialect{}

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
