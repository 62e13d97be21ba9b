package audience

import (
	"bytes"
	"encoding/json"
)

// Limits of a definition. Parse and Validate refuse a definition over any
// of them, so one definition cannot make the compiler or the warehouse do
// unbounded work.
const (
	// MaxBytes is the largest definition Parse reads, in bytes of JSON.
	MaxBytes = 256 << 10
	// MaxDepth is how deeply conditions may nest: the top condition is at
	// depth 1, and every all, any, not and where adds one.
	MaxDepth = 8
	// MaxConditions is the number of condition objects in one definition,
	// groups included.
	MaxConditions = 100
	// MaxListValues is the length of an in or not_in list.
	MaxListValues = 1000
	// MaxValues is the number of values in one definition, lists included.
	MaxValues = 5000
	// MaxStringLength is the length of a string value, in characters.
	MaxStringLength = 1000
	// MaxNameLength is the length of a model, column, relationship or
	// audience name, in characters.
	MaxNameLength = 256
	// MaxDays is the longest time window, in days (about 100 years).
	MaxDays = 36500
)

// Definition is an audience definition: the parent model whose rows are the
// audience's members, and the conditions a row must meet.
type Definition struct {
	// Model is the parent model, by name (or id).
	Model string `json:"model"`
	// Conditions select the members.
	Conditions Condition `json:"conditions"`
}

// Condition is one node of a definition. Exactly one form is set:
//
//   - a group: All (every condition holds; an empty list holds for every
//     row) or Any (at least one holds; never empty);
//   - Not: the condition does not hold (rows where it is unknown included);
//   - a column condition: Column, Operator and, for most operators, Value;
//   - a related-model condition: Relationship, Aggregate, Column (the
//     aggregated column, not for count), Operator, Value, and optionally
//     Within (a time window) and Where (filters on the related rows);
//   - InAudience or NotInAudience: membership of another saved audience.
//
// Inside Where only groups, Not and column conditions are allowed; their
// columns are the related model's.
type Condition struct {
	All []Condition `json:"all,omitempty"`
	Any []Condition `json:"any,omitempty"`
	Not *Condition  `json:"not,omitempty"`

	Column   string   `json:"column,omitempty"`
	Operator Operator `json:"operator,omitempty"`
	// Value is the operand: a string, a number (json.Number, float64 or
	// an integer type), a boolean, or a list of them for between,
	// not_between, in and not_in. It is nil for operators without one.
	Value any `json:"value,omitempty"`

	Relationship string     `json:"relationship,omitempty"`
	Aggregate    Aggregate  `json:"aggregate,omitempty"`
	Within       *Window    `json:"within,omitempty"`
	Where        *Condition `json:"where,omitempty"`

	InAudience    string `json:"in_audience,omitempty"`
	NotInAudience string `json:"not_in_audience,omitempty"`
}

// Window limits a related-model condition to the related rows whose Column
// (a date or timestamp) lies within the last Days days before the time the
// audience is compiled at.
type Window struct {
	Column   string `json:"column"`
	LastDays int    `json:"last_days"`
}

// Operator compares a column (or an aggregate) with a value.
type Operator string

// The operators. Comparisons with a missing (NULL) value never hold, except
// is_null; the negative operators (not_equals, not_contains, not_between,
// not_in) hold only for rows that have a value. Use not around a condition
// to include rows without one.
const (
	Equals         Operator = "equals"
	NotEquals      Operator = "not_equals"
	Contains       Operator = "contains"
	NotContains    Operator = "not_contains"
	StartsWith     Operator = "starts_with"
	EndsWith       Operator = "ends_with"
	GreaterThan    Operator = "greater_than"
	GreaterOrEqual Operator = "greater_or_equal"
	LessThan       Operator = "less_than"
	LessOrEqual    Operator = "less_or_equal"
	Between        Operator = "between"
	NotBetween     Operator = "not_between"
	In             Operator = "in"
	NotIn          Operator = "not_in"
	IsNull         Operator = "is_null"
	IsNotNull      Operator = "is_not_null"
	IsTrue         Operator = "is_true"
	IsFalse        Operator = "is_false"
	WithinLastDays Operator = "within_last_days"
)

// Operators lists every operator, in the order the documentation gives them.
var Operators = []Operator{
	Equals, NotEquals, Contains, NotContains, StartsWith, EndsWith,
	GreaterThan, GreaterOrEqual, LessThan, LessOrEqual, Between, NotBetween,
	In, NotIn, IsNull, IsNotNull, IsTrue, IsFalse, WithinLastDays,
}

// Aggregate is how a related-model condition sums up the related rows.
type Aggregate string

// The aggregates. count counts the matching related rows; sum, min, max and
// avg apply to a numeric column of the related model. A count and a sum
// over no rows are 0; min, max and avg over no rows are unknown, so no
// comparison with them holds.
const (
	Count Aggregate = "count"
	Sum   Aggregate = "sum"
	Min   Aggregate = "min"
	Max   Aggregate = "max"
	Avg   Aggregate = "avg"
)

// Aggregates lists every aggregate.
var Aggregates = []Aggregate{Count, Sum, Min, Max, Avg}

// kind is the form of a condition.
type kind string

const (
	kindNone          kind = ""
	kindAll           kind = "all"
	kindAny           kind = "any"
	kindNot           kind = "not"
	kindColumn        kind = "column"
	kindRelationship  kind = "relationship"
	kindInAudience    kind = "in_audience"
	kindNotInAudience kind = "not_in_audience"
)

// kinds returns every form c has set; a valid condition has exactly one.
func (c *Condition) kinds() []kind {
	var ks []kind
	if c.All != nil {
		ks = append(ks, kindAll)
	}
	if c.Any != nil {
		ks = append(ks, kindAny)
	}
	if c.Not != nil {
		ks = append(ks, kindNot)
	}
	if c.Relationship != "" {
		ks = append(ks, kindRelationship)
	} else if c.Column != "" {
		ks = append(ks, kindColumn)
	}
	if c.InAudience != "" {
		ks = append(ks, kindInAudience)
	}
	if c.NotInAudience != "" {
		ks = append(ks, kindNotInAudience)
	}
	return ks
}

// kind returns the form of c, or kindNone when it has none or several.
func (c *Condition) kind() kind {
	ks := c.kinds()
	if len(ks) != 1 {
		return kindNone
	}
	return ks[0]
}

// MarshalJSON writes the condition in its canonical form: only the fields
// of its form, and an empty all group as "all": [].
func (c Condition) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	field := func(name string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		key, err := json.Marshal(name)
		if err != nil {
			return err
		}
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(b)
		return nil
	}
	var err error
	add := func(name string, v any) {
		if err == nil {
			err = field(name, v)
		}
	}
	if c.All != nil {
		add("all", c.All)
	}
	if c.Any != nil {
		add("any", c.Any)
	}
	if c.Not != nil {
		add("not", c.Not)
	}
	if c.Relationship != "" {
		add("relationship", c.Relationship)
		if c.Aggregate != "" {
			add("aggregate", c.Aggregate)
		}
	}
	if c.Column != "" {
		add("column", c.Column)
	}
	if c.Operator != "" {
		add("operator", c.Operator)
	}
	if c.Value != nil {
		add("value", c.Value)
	}
	if c.Relationship != "" {
		if c.Within != nil {
			add("within", c.Within)
		}
		if c.Where != nil {
			add("where", c.Where)
		}
	}
	if c.InAudience != "" {
		add("in_audience", c.InAudience)
	}
	if c.NotInAudience != "" {
		add("not_in_audience", c.NotInAudience)
	}
	if err != nil {
		return nil, err
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON decodes a condition as strictly as Parse does.
func (c *Condition) UnmarshalJSON(data []byte) error {
	n, err := readJSON(data)
	if err != nil {
		return err
	}
	d := &decoder{}
	got := d.condition(n, "", 1)
	if err := d.problems.err(); err != nil {
		return err
	}
	*c = got
	return nil
}

// UnmarshalJSON decodes a definition as strictly as Parse does, without
// Parse's structural checks.
func (def *Definition) UnmarshalJSON(data []byte) error {
	n, err := readJSON(data)
	if err != nil {
		return err
	}
	d := &decoder{}
	got := d.definition(n)
	if err := d.problems.err(); err != nil {
		return err
	}
	*def = got
	return nil
}
