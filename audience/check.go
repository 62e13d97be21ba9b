package audience

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Check checks a definition's structure without its model: every condition
// has exactly one form and the fields of that form, operators and
// aggregates are known, values have the shape their operator needs, and
// the definition is within the limits. It returns a *ValidationError
// listing every problem, or nil. Parse and Validate call it; call it
// directly for a Definition built in Go.
func Check(def *Definition) error {
	if def == nil {
		return &ValidationError{Problems: []Problem{{Message: "the definition is missing"}}}
	}
	c := &checker{}
	c.definition(def)
	return c.problems.err()
}

// shape is what an operator's value must look like.
type shape int

const (
	shapeNone   shape = iota // no value
	shapeScalar              // one string, number or boolean
	shapePair                // a list of exactly two
	shapeList                // a list of 1 to MaxListValues
	shapeDays                // a whole number of days
)

var operatorShapes = map[Operator]shape{
	Equals: shapeScalar, NotEquals: shapeScalar,
	Contains: shapeScalar, NotContains: shapeScalar, StartsWith: shapeScalar, EndsWith: shapeScalar,
	GreaterThan: shapeScalar, GreaterOrEqual: shapeScalar, LessThan: shapeScalar, LessOrEqual: shapeScalar,
	Between: shapePair, NotBetween: shapePair,
	In: shapeList, NotIn: shapeList,
	IsNull: shapeNone, IsNotNull: shapeNone, IsTrue: shapeNone, IsFalse: shapeNone,
	WithinLastDays: shapeDays,
}

// aggregateOperators compare an aggregate with a number.
var aggregateOperators = []Operator{Equals, NotEquals, GreaterThan, GreaterOrEqual, LessThan, LessOrEqual, Between, NotBetween}

// scalar is one normalized value: a string, a number (its decimal text) or
// a boolean.
type scalar struct {
	typ jtype // jString, jNumber or jBool
	s   string
	b   bool
}

type checker struct {
	problems problems
	nodes    int
	values   int
	// tooMany and tooDeep are reported once.
	tooMany, tooDeep, tooManyValues bool
}

func (c *checker) definition(def *Definition) {
	c.name(def.Model, "model", "the name of the parent model, such as \"customers\"")
	c.condition(&def.Conditions, "conditions", 1, false)
}

// name checks a required name's presence and length.
func (c *checker) name(s, path, what string) {
	switch {
	case s == "":
		if what != "" {
			c.problems.add(path, "is required: %s", what)
		} else {
			c.problems.add(path, "is required")
		}
	case !utf8.ValidString(s):
		c.problems.add(path, "is not valid UTF-8")
	case utf8.RuneCountInString(s) > MaxNameLength:
		c.problems.add(path, "is longer than %d characters", MaxNameLength)
	case strings.IndexByte(s, 0) >= 0:
		c.problems.add(path, "must not contain NUL characters")
	}
}

func (c *checker) condition(cond *Condition, path string, depth int, inWhere bool) {
	c.nodes++
	if c.nodes > MaxConditions {
		if !c.tooMany {
			c.tooMany = true
			c.problems.add(path, "too many conditions: a definition may have at most %d, groups included", MaxConditions)
		}
		return
	}
	if depth > MaxDepth {
		if !c.tooDeep {
			c.tooDeep = true
			c.problems.add(path, "nested too deeply: conditions may nest at most %d levels (each all, any, not and where is a level)", MaxDepth)
		}
		return
	}
	ks := cond.kinds()
	switch {
	case len(ks) == 0:
		c.problems.add(path, "a condition needs exactly one of %s", quoteList(formNames))
		return
	case len(ks) > 1:
		c.problems.add(path, "a condition has exactly one of %s; this one has %s", quoteList(formNames), quoteAll(ks))
		return
	}
	k := ks[0]
	for _, f := range strayFields(cond, k) {
		c.problems.add(join(path, f), "is not allowed in %s", formDescription(string(k)))
	}
	if inWhere && k != kindAll && k != kindAny && k != kindNot && k != kindColumn {
		c.problems.add(path, "a where condition may only use all, any, not and column conditions on the related model's columns")
		return
	}
	switch k {
	case kindAll:
		for i := range cond.All {
			c.condition(&cond.All[i], index(join(path, "all"), i), depth+1, inWhere)
		}
	case kindAny:
		if len(cond.Any) == 0 {
			c.problems.add(join(path, "any"), "needs at least one condition")
		}
		for i := range cond.Any {
			c.condition(&cond.Any[i], index(join(path, "any"), i), depth+1, inWhere)
		}
	case kindNot:
		c.condition(cond.Not, join(path, "not"), depth+1, inWhere)
	case kindColumn:
		c.name(cond.Column, join(path, "column"), "")
		c.operator(cond, path, Operators)
	case kindRelationship:
		c.relationship(cond, path, depth)
	case kindInAudience:
		c.name(cond.InAudience, join(path, "in_audience"), "")
	case kindNotInAudience:
		c.name(cond.NotInAudience, join(path, "not_in_audience"), "")
	}
}

// strayFields names the fields cond sets that its form k does not use.
func strayFields(cond *Condition, k kind) []string {
	var out []string
	isCmp := k == kindColumn || k == kindRelationship
	if cond.Column != "" && !isCmp {
		out = append(out, "column")
	}
	if cond.Operator != "" && !isCmp {
		out = append(out, "operator")
	}
	if cond.Value != nil && !isCmp {
		out = append(out, "value")
	}
	if k != kindRelationship {
		if cond.Aggregate != "" {
			out = append(out, "aggregate")
		}
		if cond.Within != nil {
			out = append(out, "within")
		}
		if cond.Where != nil {
			out = append(out, "where")
		}
	}
	return out
}

// operator checks a condition's operator and the shape of its value.
func (c *checker) operator(cond *Condition, path string, allowed []Operator) {
	opPath := join(path, "operator")
	if cond.Operator == "" {
		c.problems.add(opPath, "is required: one of %s", quoteList(allowed))
		return
	}
	if !slices.Contains(allowed, cond.Operator) {
		msg := fmt.Sprintf("unknown operator %q", cond.Operator)
		if slices.Contains(Operators, cond.Operator) {
			msg = fmt.Sprintf("operator %q does not apply to an aggregate", cond.Operator)
		}
		names := make([]string, len(allowed))
		for i, o := range allowed {
			names[i] = string(o)
		}
		if s := suggest(string(cond.Operator), names); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		} else {
			msg += "; expected one of " + strings.Join(names, ", ")
		}
		c.problems.add(opPath, "%s", msg)
		return
	}
	c.value(cond.Value, join(path, "value"), cond.Operator)
}

// value checks a value's shape for op, and each value in it.
func (c *checker) value(v any, path string, op Operator) {
	sh := operatorShapes[op]
	list, isList := asList(v)
	switch sh {
	case shapeNone:
		if v != nil {
			c.problems.add(path, "is not used with %s; remove it", op)
		}
		return
	case shapeScalar, shapeDays:
		if v == nil {
			c.problems.add(path, "is required with %s", op)
			return
		}
		if isList {
			if op == Equals || op == NotEquals {
				c.problems.add(path, "expected a single value; to match any of several values use the operator %s", map[Operator]Operator{Equals: In, NotEquals: NotIn}[op])
			} else {
				c.problems.add(path, "expected a single value, not a list")
			}
			return
		}
		sv, ok := c.scalar(v, path)
		if !ok || sh != shapeDays {
			return
		}
		days, whole := int64(0), false
		if sv.typ == jNumber {
			days, whole = wholeNumber(json.Number(sv.s))
		}
		if !whole || days < 1 || days > MaxDays {
			c.problems.add(path, "expected a whole number of days between 1 and %d", MaxDays)
		}
	case shapePair:
		if !isList || len(list) != 2 {
			c.problems.add(path, "expected a list of two values, the lower bound first: [low, high]")
			return
		}
		for i, item := range list {
			c.scalar(item, index(path, i))
		}
	case shapeList:
		if !isList {
			c.problems.add(path, "expected a list of values, such as [\"CA\", \"NY\"]")
			return
		}
		if len(list) == 0 {
			c.problems.add(path, "needs at least one value")
			return
		}
		if len(list) > MaxListValues {
			c.problems.add(path, "has %d values; at most %d are allowed", len(list), MaxListValues)
			return
		}
		for i, item := range list {
			c.scalar(item, index(path, i))
		}
	}
}

// scalar checks one value and counts it against MaxValues.
func (c *checker) scalar(v any, path string) (scalar, bool) {
	c.values++
	if c.values > MaxValues {
		if !c.tooManyValues {
			c.tooManyValues = true
			c.problems.add(path, "too many values: a definition may have at most %d", MaxValues)
		}
		return scalar{}, false
	}
	sv, msg := toScalar(v)
	if msg != "" {
		c.problems.add(path, "%s", msg)
		return scalar{}, false
	}
	return sv, true
}

// asList returns v's items when v is a list (any slice but []byte).
func asList(v any) ([]any, bool) {
	switch l := v.(type) {
	case nil:
		return nil, false
	case []any:
		return l, true
	case []byte, json.RawMessage:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

// toScalar normalizes a single value, or says what is wrong with it.
func toScalar(v any) (scalar, string) {
	switch x := v.(type) {
	case string:
		switch {
		case !utf8.ValidString(x):
			return scalar{}, "is not valid UTF-8"
		case utf8.RuneCountInString(x) > MaxStringLength:
			return scalar{}, fmt.Sprintf("is longer than %d characters", MaxStringLength)
		case strings.IndexByte(x, 0) >= 0:
			return scalar{}, "must not contain NUL characters"
		}
		return scalar{typ: jString, s: x}, ""
	case bool:
		return scalar{typ: jBool, b: x}, ""
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return scalar{}, fmt.Sprintf("%q is not a number within range", string(x))
		}
		return scalar{typ: jNumber, s: string(x)}, ""
	case float64:
		return floatScalar(x)
	case float32:
		return floatScalar(float64(x))
	case int:
		return scalar{typ: jNumber, s: strconv.FormatInt(int64(x), 10)}, ""
	case int8:
		return scalar{typ: jNumber, s: strconv.FormatInt(int64(x), 10)}, ""
	case int16:
		return scalar{typ: jNumber, s: strconv.FormatInt(int64(x), 10)}, ""
	case int32:
		return scalar{typ: jNumber, s: strconv.FormatInt(int64(x), 10)}, ""
	case int64:
		return scalar{typ: jNumber, s: strconv.FormatInt(x, 10)}, ""
	case uint:
		return scalar{typ: jNumber, s: strconv.FormatUint(uint64(x), 10)}, ""
	case uint8:
		return scalar{typ: jNumber, s: strconv.FormatUint(uint64(x), 10)}, ""
	case uint16:
		return scalar{typ: jNumber, s: strconv.FormatUint(uint64(x), 10)}, ""
	case uint32:
		return scalar{typ: jNumber, s: strconv.FormatUint(uint64(x), 10)}, ""
	case uint64:
		return scalar{typ: jNumber, s: strconv.FormatUint(x, 10)}, ""
	case nil:
		return scalar{}, "must not be null"
	}
	if _, ok := asList(v); ok {
		return scalar{}, "expected a string, number or boolean, not a list"
	}
	return scalar{}, fmt.Sprintf("expected a string, number or boolean, got %T", v)
}

func floatScalar(f float64) (scalar, string) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return scalar{}, "is not a finite number"
	}
	return scalar{typ: jNumber, s: strconv.FormatFloat(f, 'g', -1, 64)}, ""
}

// relationship checks a related-model condition's fields.
func (c *checker) relationship(cond *Condition, path string, depth int) {
	c.name(cond.Relationship, join(path, "relationship"), "")
	aggPath := join(path, "aggregate")
	switch {
	case cond.Aggregate == "":
		c.problems.add(aggPath, "is required: one of %s", quoteList(Aggregates))
	case !slices.Contains(Aggregates, cond.Aggregate):
		names := make([]string, len(Aggregates))
		for i, a := range Aggregates {
			names[i] = string(a)
		}
		msg := fmt.Sprintf("unknown aggregate %q", cond.Aggregate)
		if s := suggest(string(cond.Aggregate), names); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		} else {
			msg += "; expected one of " + quoteList(Aggregates)
		}
		c.problems.add(aggPath, "%s", msg)
	case cond.Aggregate == Count:
		if cond.Column != "" {
			c.problems.add(join(path, "column"), "is not used with the aggregate count, which counts rows; remove it")
		}
	default:
		c.name(cond.Column, join(path, "column"), fmt.Sprintf("the numeric column of the related model to %s", cond.Aggregate))
	}
	c.operator(cond, path, aggregateOperators)
	if cond.Operator != "" && slices.Contains(aggregateOperators, cond.Operator) {
		// Aggregates are numbers, whatever the column: check that here.
		c.numbers(cond.Value, join(path, "value"), cond.Aggregate == Count)
	}
	if cond.Within != nil {
		wp := join(path, "within")
		c.name(cond.Within.Column, join(wp, "column"), "a date or timestamp column of the related model")
		if cond.Within.LastDays < 1 || cond.Within.LastDays > MaxDays {
			c.problems.add(join(wp, "last_days"), "must be between 1 and %d", MaxDays)
		}
	}
	if cond.Where != nil {
		c.condition(cond.Where, join(path, "where"), depth+1, true)
	}
}

// numbers checks that an aggregate's operand is numeric (whole and not
// negative for a count).
func (c *checker) numbers(v any, path string, count bool) {
	items := []any{v}
	paths := []string{path}
	if list, ok := asList(v); ok {
		items, paths = list, make([]string, len(list))
		for i := range list {
			paths[i] = index(path, i)
		}
	}
	for i, item := range items {
		sv, msg := toScalar(item)
		if msg != "" || item == nil {
			continue // reported by value
		}
		if sv.typ != jNumber {
			c.problems.add(paths[i], "expected a number, got %s", sv.typ)
			continue
		}
		if count {
			if n, ok := wholeNumber(json.Number(sv.s)); !ok || n < 0 {
				c.problems.add(paths[i], "expected a whole number of rows, 0 or more")
			}
		}
	}
}
