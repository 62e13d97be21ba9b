package store

import (
	"fmt"
	"strings"
)

// Model column types: what audiences and destinations need to know of a
// column, whatever the engine calls it.
const (
	TypeInteger   = "integer"
	TypeNumber    = "number"
	TypeString    = "string"
	TypeBoolean   = "boolean"
	TypeDate      = "date"
	TypeTimestamp = "timestamp"
	TypeJSON      = "json"
)

// ColumnTypes lists the model column types.
var ColumnTypes = []string{TypeInteger, TypeNumber, TypeString, TypeBoolean, TypeDate, TypeTimestamp, TypeJSON}

// ValidColumnType reports whether t is one of ColumnTypes.
func ValidColumnType(t string) bool {
	for _, c := range ColumnTypes {
		if t == c {
			return true
		}
	}
	return false
}

// ColumnType maps a declared SQL type (SQLite's or Trino's: "INTEGER",
// "bigint", "varchar(20)", "timestamp(3) with time zone", "DOUBLE", ...)
// to a model column type, following SQLite's affinity rules for names it
// does not know. It returns "" for a type that says nothing (empty, BLOB,
// ANY): the caller must find the type another way.
func ColumnType(declared string) string {
	t := strings.ToLower(strings.TrimSpace(declared))
	if i := strings.IndexByte(t, '('); i >= 0 {
		// Drop the precision or length: varchar(20), timestamp(3) with time zone.
		rest := ""
		if j := strings.IndexByte(t[i:], ')'); j >= 0 {
			rest = t[i+j+1:]
		}
		t = strings.TrimSpace(t[:i] + rest)
	}
	switch {
	case t == "":
		return ""
	case strings.Contains(t, "bool"):
		return TypeBoolean
	case strings.HasPrefix(t, "timestamp"), strings.HasPrefix(t, "datetime"):
		return TypeTimestamp
	case t == "date":
		return TypeDate
	case t == "json", t == "jsonb":
		return TypeJSON
	case strings.Contains(t, "int"):
		return TypeInteger
	case strings.Contains(t, "char"), strings.Contains(t, "clob"), strings.Contains(t, "text"),
		t == "string", t == "uuid", strings.HasPrefix(t, "time"):
		return TypeString
	case strings.Contains(t, "real"), strings.Contains(t, "floa"), strings.Contains(t, "doub"),
		strings.HasPrefix(t, "decimal"), strings.HasPrefix(t, "numeric"), t == "number":
		return TypeNumber
	}
	return ""
}

// Relation returns what a query over the model reads FROM: the table of a
// table model, named as the dialect's TableNamer names it (the quoted
// schema.table without one), or a SQL model's query as a parenthesised
// subquery. The query goes on lines of its own, so a trailing line comment
// in it cannot swallow the closing parenthesis; the warehouse's CheckSQL
// refuses SQL that does not work in this form (a trailing semicolon, an
// unterminated comment), so every caller that wraps model SQL must use
// Relation. It returns ErrInvalid for a model with neither or a table that
// is not schema.table.
func (m Model) Relation(d Dialect) (string, error) {
	switch {
	case m.Table != "" && m.SQL != "":
		return "", fmt.Errorf("model %s has both a table and SQL: %w", m.Name, ErrInvalid)
	case m.Table != "":
		schema, table, ok := strings.Cut(m.Table, ".")
		if !ok || schema == "" || table == "" {
			return "", fmt.Errorf("model %s: table %q is not schema.table: %w", m.Name, m.Table, ErrInvalid)
		}
		if tn, ok := d.(TableNamer); ok {
			return tn.TableName(schema, table), nil
		}
		return d.QuoteIdent(schema) + "." + d.QuoteIdent(table), nil
	case m.SQL != "":
		return "(\n" + m.SQL + "\n)", nil
	}
	return "", fmt.Errorf("model %s has neither a table nor SQL: %w", m.Name, ErrInvalid)
}

// Column returns the model's column named name (exactly), and whether it
// has one.
func (m Model) Column(name string) (Column, bool) {
	for _, c := range m.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Dependent is an object that depends on another and keeps it from being
// deleted or changed.
type Dependent struct {
	// Type is "audience", "sync" or "model".
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
	// Why says how it depends, for example "audience over the model".
	Why string `json:"why,omitempty"`
}

// InUseError is returned when a change would break objects that depend on
// the changed one. It wraps ErrConflict.
type InUseError struct {
	// Object names what was to change, for example "model customers".
	Object     string
	Dependents []Dependent
}

func (e *InUseError) Error() string {
	parts := make([]string, len(e.Dependents))
	for i, d := range e.Dependents {
		parts[i] = fmt.Sprintf("%s %s (%s)", d.Type, d.Name, d.ID)
	}
	return fmt.Sprintf("%s is used by %s: %v", e.Object, strings.Join(parts, ", "), ErrConflict)
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *InUseError) Unwrap() error { return ErrConflict }
