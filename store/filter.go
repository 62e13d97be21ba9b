package store

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Access filter operators. Each compares the filtered column with the
// filter's value; a row whose column is NULL passes none of them (SQL
// comparison semantics), so a filter never lets a row through by default.
const (
	FilterEquals         = "equals"
	FilterNotEquals      = "not_equals"
	FilterIn             = "in"
	FilterNotIn          = "not_in"
	FilterGreaterThan    = "greater_than"
	FilterGreaterOrEqual = "greater_or_equal"
	FilterLessThan       = "less_than"
	FilterLessOrEqual    = "less_or_equal"
)

// FilterOperators lists the access filter operators.
var FilterOperators = []string{
	FilterEquals, FilterNotEquals, FilterIn, FilterNotIn,
	FilterGreaterThan, FilterGreaterOrEqual, FilterLessThan, FilterLessOrEqual,
}

// Limits of an access filter's value.
const (
	maxFilterValues     = 1000
	maxFilterValueBytes = 1024
)

// AccessFilter is a row-level filter (DESIGN.md section 3): members of
// Group see only the rows of Table for which "Column Operator Value" holds,
// in every query run for them. It is a typed condition, never SQL text: the
// warehouse compiles it with the column quoted and the values bound as
// parameters. A member in several groups with filters on the same table
// sees the rows that pass all of them (AND).
type AccessFilter struct {
	ID          string `json:"id"`
	WorkspaceID string `json:"workspace_id"`
	// Group is the name of the group the filter applies to.
	Group string `json:"group"`
	// Table is the filtered warehouse table, as schema.table.
	Table    string `json:"table"`
	Column   string `json:"column"`
	Operator string `json:"operator"`
	// Value is a string, an int64, a float64 or a bool; for in and not_in
	// a non-empty []any of those. Normalize converts what JSON decoding
	// produces (float64, json.Number) into these types.
	Value     any       `json:"value"`
	CreatedAt time.Time `json:"created_at"`
}

// Normalize checks the filter's shape (group, schema.table, column,
// operator, value) and converts its value to the canonical types listed on
// Value. It does not know whether the table and column exist: CheckTable
// does, against the warehouse's description of the table. It returns
// ErrInvalid naming what is wrong.
func (f *AccessFilter) Normalize() error {
	switch {
	case strings.TrimSpace(f.Group) == "":
		return fmt.Errorf("access filter: group is required: %w", ErrInvalid)
	case strings.TrimSpace(f.Column) == "":
		return fmt.Errorf("access filter: column is required: %w", ErrInvalid)
	}
	if _, _, err := f.SplitTable(); err != nil {
		return err
	}
	list := false
	switch f.Operator {
	case FilterIn, FilterNotIn:
		list = true
	case FilterEquals, FilterNotEquals, FilterGreaterThan, FilterGreaterOrEqual, FilterLessThan, FilterLessOrEqual:
	default:
		return fmt.Errorf("access filter: operator %q is not one of %s: %w", f.Operator, strings.Join(FilterOperators, ", "), ErrInvalid)
	}
	if !list {
		v, err := filterScalar(f.Value)
		if err != nil {
			return fmt.Errorf("access filter: value: %w", err)
		}
		f.Value = v
		return nil
	}
	var in []any
	switch vs := f.Value.(type) {
	case []any:
		in = vs
	case []string:
		for _, s := range vs {
			in = append(in, s)
		}
	case []int64:
		for _, n := range vs {
			in = append(in, n)
		}
	default:
		return fmt.Errorf("access filter: operator %s needs a list of values: %w", f.Operator, ErrInvalid)
	}
	if len(in) == 0 || len(in) > maxFilterValues {
		return fmt.Errorf("access filter: operator %s needs 1 to %d values: %w", f.Operator, maxFilterValues, ErrInvalid)
	}
	out := make([]any, len(in))
	for i, v := range in {
		s, err := filterScalar(v)
		if err != nil {
			return fmt.Errorf("access filter: value [%d]: %w", i, err)
		}
		out[i] = s
	}
	f.Value = out
	return nil
}

// SplitTable returns the schema and table of f.Table, or ErrInvalid when it
// is not schema.table.
func (f AccessFilter) SplitTable() (schema, table string, err error) {
	schema, table, ok := strings.Cut(f.Table, ".")
	if !ok || schema == "" || table == "" || strings.Contains(table, ".") {
		return "", "", fmt.Errorf("access filter: table %q is not schema.table: %w", f.Table, ErrInvalid)
	}
	return schema, table, nil
}

// Values returns the filter's values as a list: one for a scalar operator.
func (f AccessFilter) Values() []any {
	if vs, ok := f.Value.([]any); ok {
		return vs
	}
	return []any{f.Value}
}

// CheckTable checks the filter against the warehouse's description of its
// table: the table must be the one named and the column one of its columns.
// It returns the column's name as the table spells it, or ErrInvalid.
func (f AccessFilter) CheckTable(t Table) (string, error) {
	schema, table, err := f.SplitTable()
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(schema, t.Schema) || !strings.EqualFold(table, t.Name) {
		return "", fmt.Errorf("access filter: table %s is not %s: %w", f.Table, t.QualifiedName(), ErrInvalid)
	}
	for _, c := range t.Columns {
		if strings.EqualFold(c.Name, f.Column) {
			return c.Name, nil
		}
	}
	return "", fmt.Errorf("access filter: table %s has no column %q: %w", t.QualifiedName(), f.Column, ErrInvalid)
}

// filterScalar converts one filter value to string, int64, float64 or
// bool. NULL, objects and nested lists are refused: a filter compares with
// a value, and a comparison with NULL would hide every row silently.
func filterScalar(v any) (any, error) {
	switch x := v.(type) {
	case string:
		if len(x) > maxFilterValueBytes {
			return nil, fmt.Errorf("a string longer than %d bytes: %w", maxFilterValueBytes, ErrInvalid)
		}
		return x, nil
	case bool:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("a number that is not finite: %w", ErrInvalid)
		}
		if x == math.Trunc(x) && math.Abs(x) <= 1<<53 {
			return int64(x), nil
		}
		return x, nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", x, ErrInvalid)
		}
		return filterScalar(f)
	case nil:
		return nil, fmt.Errorf("null is not a value a filter can compare with: %w", ErrInvalid)
	}
	return nil, fmt.Errorf("%T is not a string, number or boolean: %w", v, ErrInvalid)
}
