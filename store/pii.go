package store

import (
	"fmt"
	"strings"
	"time"
)

// PII classification (DESIGN.md section 3). Humans classify warehouse
// source columns; a model column's level is derived from the source
// columns it reads (its lineage) and may be made stricter by the model's
// definition, never looser. Nothing an agent creates chooses its own level.

// Lineage kinds of a model column.
const (
	// LineageColumn: the column is a plain reference to one source column
	// (a table model's column, or a SQL model's column the engine traces to
	// exactly one column of a table, as email or email AS x).
	LineageColumn = "column"
	// LineageExpression: any other expression (a function, CASE, an
	// aggregate, a window, a subquery, a column of a UNION or of a query
	// with subqueries or CTEs): its sources are every source column the
	// query reads.
	LineageExpression = "expression"
)

// piiRank orders the levels from the least to the most strict. A level it
// does not know (empty included) ranks as blocked.
func piiRank(level string) int {
	switch level {
	case PIINone:
		return 0
	case PIIRedacted:
		return 1
	case PIISyncOnly:
		return 2
	}
	return 3
}

// ValidPIILevel reports whether level is one of the four PII levels.
func ValidPIILevel(level string) bool {
	switch level {
	case PIINone, PIIRedacted, PIISyncOnly, PIIBlocked:
		return true
	}
	return false
}

// StricterPII returns the stricter of two levels; an unknown or empty level
// counts as blocked, so a missing label hides data instead of leaking it.
func StricterPII(a, b string) string {
	if piiRank(b) > piiRank(a) {
		a = b
	}
	if !ValidPIILevel(a) {
		return PIIBlocked
	}
	return a
}

// PIIClass is the level humans gave one warehouse source column.
type PIIClass struct {
	// Column is "schema.table.column", lowercase.
	Column string `json:"column"`
	Level  string `json:"level"`
	// Classified is false for a column nobody classified (it is blocked).
	Classified bool      `json:"classified"`
	UpdatedAt  time.Time `json:"updated_at"`
	UpdatedBy  string    `json:"updated_by,omitempty"`
}

// SourceColumn returns the classification key of a warehouse column:
// "schema.table.column", lowercase (SQLite and Trino names are not case
// sensitive).
func SourceColumn(schema, table, column string) string {
	return strings.ToLower(schema + "." + table + "." + column)
}

// NormalizeSourceColumn checks a classification key written by a person
// ("analytics.customers.email") and returns it lowercase. It returns
// ErrInvalid unless it has three non-empty dot-separated parts.
func NormalizeSourceColumn(ref string) (string, error) {
	parts := strings.Split(strings.TrimSpace(ref), ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("column %q is not schema.table.column: %w", ref, ErrInvalid)
	}
	for _, p := range parts {
		if p == "" || strings.TrimSpace(p) != p {
			return "", fmt.Errorf("column %q is not schema.table.column: %w", ref, ErrInvalid)
		}
	}
	return SourceColumn(parts[0], parts[1], parts[2]), nil
}

// PIILevels maps classification keys (SourceColumn) to levels. A column
// missing from it is unclassified, which is blocked.
type PIILevels map[string]string

// Level returns the level of a source column; unclassified is blocked.
func (l PIILevels) Level(column string) string {
	if lv, ok := l[strings.ToLower(column)]; ok && ValidPIILevel(lv) {
		return lv
	}
	return PIIBlocked
}

// ApplyPII sets every column's PII to its effective level: the strictest
// of the level its definition requests (Column.Requested; none when
// empty) and the levels of its source columns; a column any of whose
// Guards is blocked is blocked. A column of a table model
// without recorded lineage reads the table's column of the same name; a
// column of a SQL model without recorded lineage is blocked (its lineage
// is unknown, so nothing is shown until the model is saved again).
func ApplyPII(m *Model, levels PIILevels) {
	for i := range m.Columns {
		c := &m.Columns[i]
		c.PII = effectivePII(*m, *c, levels)
	}
}

func effectivePII(m Model, c Column, levels PIILevels) string {
	level := PIINone
	if c.Requested != "" {
		level = StricterPII(level, c.Requested)
	}
	sources := c.Sources
	switch {
	case c.Lineage == "" && m.Table != "":
		sources = []string{strings.ToLower(m.Table + "." + c.Name)}
	case c.Lineage == "":
		return PIIBlocked
	}
	for _, s := range sources {
		level = StricterPII(level, levels.Level(s))
	}
	for _, g := range c.Guards {
		if levels.Level(g) == PIIBlocked {
			return PIIBlocked
		}
	}
	return level
}
