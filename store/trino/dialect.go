package trino

import (
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// Compile-time check that Dialect implements store.Dialect.
var _ store.Dialect = Dialect{}

// Dialect is Trino's SQL dialect, for SQL built from typed definitions to
// run on a Trino warehouse.
type Dialect struct{}

// Name returns "trino".
func (Dialect) Name() string { return "trino" }

// QuoteIdent quotes one identifier (no dots) in double quotes, doubling the
// double quotes inside it, as standard SQL and Trino do. Trino matches
// quoted names case-insensitively (it lowercases them), so a quoted name
// still finds a column that is stored in lower case.
func (Dialect) QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
