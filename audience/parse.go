package audience

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Parse decodes a definition from JSON, strictly, and checks its structure
// (everything that does not need the model: operators, value shapes,
// limits). Unknown fields, duplicate fields, wrong JSON types, a condition
// with no form or with two, and anything over the limits are errors. The
// error is a *ValidationError listing every problem with its JSON path
// (for example `conditions.all[2].value: expected a list of two values`).
// Use Validate to check the definition against its model.
func Parse(data []byte) (*Definition, error) {
	if len(data) > MaxBytes {
		return nil, &ValidationError{Problems: []Problem{{
			Message: fmt.Sprintf("the definition is %d bytes; at most %d are allowed", len(data), MaxBytes)}}}
	}
	n, err := readJSON(data)
	if err != nil {
		return nil, err
	}
	d := &decoder{}
	def := d.definition(n)
	if err := d.problems.err(); err != nil {
		return nil, err
	}
	if err := Check(&def); err != nil {
		return nil, err
	}
	return &def, nil
}

// jnode is a JSON value with its object fields in document order, so
// duplicates can be reported (encoding/json keeps the last silently).
type jnode struct {
	typ    jtype
	fields []jfield
	items  []*jnode
	str    string
	num    json.Number
	b      bool
}

type jfield struct {
	key string
	val *jnode
}

type jtype int

const (
	jNull jtype = iota
	jObject
	jArray
	jString
	jNumber
	jBool
)

func (t jtype) String() string {
	switch t {
	case jObject:
		return "an object"
	case jArray:
		return "a list"
	case jString:
		return "a string"
	case jNumber:
		return "a number"
	case jBool:
		return "a boolean"
	}
	return "null"
}

// maxJSONDepth bounds the nesting of the JSON itself, before it is read as
// a definition: a definition at MaxDepth nests about twice as deep.
const maxJSONDepth = 4*MaxDepth + 8

// readJSON reads one JSON value, refusing invalid UTF-8, excessive nesting
// and anything after the value.
func readJSON(data []byte) (*jnode, error) {
	fail := func(format string, args ...any) error {
		return &ValidationError{Problems: []Problem{{Message: fmt.Sprintf(format, args...)}}}
	}
	if !utf8.Valid(data) {
		return nil, fail("the definition is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := readValue(dec, 0)
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.Is(err, errTooDeep):
			return nil, fail("the definition nests more than %d levels deep", maxJSONDepth)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fail("the definition is not valid JSON: it ends too early")
		case errors.As(err, &se):
			return nil, fail("the definition is not valid JSON: %s (at byte %d)", se.Error(), se.Offset)
		}
		return nil, fail("the definition is not valid JSON: %s", err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fail("the definition is not valid JSON: unexpected data after the definition (at byte %d)", dec.InputOffset())
	}
	return n, nil
}

var errTooDeep = errors.New("too deep")

func readValue(dec *json.Decoder, depth int) (*jnode, error) {
	if depth > maxJSONDepth {
		return nil, errTooDeep
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &jnode{typ: jObject}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("unexpected object key %v", kt)
				}
				v, err := readValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.fields = append(n.fields, jfield{key: key, val: v})
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		case '[':
			n := &jnode{typ: jArray, items: []*jnode{}}
			for dec.More() {
				v, err := readValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case string:
		return &jnode{typ: jString, str: t}, nil
	case json.Number:
		return &jnode{typ: jNumber, num: t}, nil
	case bool:
		return &jnode{typ: jBool, b: t}, nil
	case nil:
		return &jnode{typ: jNull}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// decoder turns JSON nodes into a Definition, recording every problem
// with its path and going on where it can.
type decoder struct {
	problems problems
	// values counts the values decoded, so a huge definition stops early.
	values int
	nodes  int
}

// fields checks an object's keys: duplicates and unknown keys are
// problems. It returns the fields by key.
func (d *decoder) fields(n *jnode, path string, known []string) map[string]*jnode {
	m := make(map[string]*jnode, len(n.fields))
	for _, f := range n.fields {
		if _, dup := m[f.key]; dup {
			d.problems.add(join(path, f.key), "appears more than once")
			continue
		}
		if !slices.Contains(known, f.key) {
			msg := fmt.Sprintf("unknown field %q", f.key)
			if s := suggest(f.key, known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += "; expected " + quoteList(known)
			}
			d.problems.add(path, "%s", msg)
			continue
		}
		m[f.key] = f.val
	}
	return m
}

var definitionFields = []string{"model", "conditions"}

func (d *decoder) definition(n *jnode) Definition {
	var def Definition
	if n.typ != jObject {
		d.problems.add("", "expected an object with model and conditions, got %s", n.typ)
		return def
	}
	f := d.fields(n, "", definitionFields)
	if v, ok := f["model"]; ok {
		def.Model = d.name(v, "model")
	} else {
		d.problems.add("model", "is required: the name of the parent model, such as \"customers\"")
	}
	if v, ok := f["conditions"]; ok {
		def.Conditions = d.condition(v, "conditions", 1)
	} else {
		d.problems.add("conditions", "is required: a condition or a group of conditions, such as {\"all\": [...]}")
	}
	return def
}

// conditionFields are the keys a condition may have; forms are the keys
// that say which form it is (column also names the aggregated column of a
// relationship condition).
var (
	conditionFields = []string{"all", "any", "not", "column", "operator", "value",
		"relationship", "aggregate", "within", "where", "in_audience", "not_in_audience"}
	forms     = []string{"all", "any", "not", "relationship", "in_audience", "not_in_audience"}
	formNames = []string{"all", "any", "not", "column", "relationship", "in_audience", "not_in_audience"}
	// formFields are the keys each form allows.
	formFields = map[string][]string{
		"all":             {"all"},
		"any":             {"any"},
		"not":             {"not"},
		"column":          {"column", "operator", "value"},
		"relationship":    {"relationship", "aggregate", "column", "operator", "value", "within", "where"},
		"in_audience":     {"in_audience"},
		"not_in_audience": {"not_in_audience"},
	}
)

func (d *decoder) condition(n *jnode, path string, depth int) Condition {
	var c Condition
	d.nodes++
	if d.nodes > 4*MaxConditions {
		// Check reports the limit; stop decoding a runaway tree here.
		return c
	}
	if n.typ != jObject {
		d.problems.add(path, "expected an object (a condition), got %s", n.typ)
		return c
	}
	f := d.fields(n, path, conditionFields)
	var present []string
	for _, k := range forms {
		if _, ok := f[k]; ok {
			present = append(present, k)
		}
	}
	form := ""
	switch {
	case len(present) > 1:
		d.problems.add(path, "a condition has exactly one of %s; this one has %s", quoteList(formNames), quoteAll(present))
		return c
	case len(present) == 1:
		form = present[0]
	default:
		if _, ok := f["column"]; ok {
			form = "column"
		}
	}
	if form == "" {
		_, agg := f["aggregate"]
		_, within := f["within"]
		_, where := f["where"]
		_, op := f["operator"]
		_, val := f["value"]
		switch {
		case agg || within || where:
			d.problems.add(join(path, "relationship"), "is required: aggregate, within and where belong to a condition on a related model")
		case op || val:
			d.problems.add(join(path, "column"), "is required")
		case len(n.fields) == 0:
			d.problems.add(path, "empty condition: expected one of %s", quoteList(formNames))
		}
		return c
	}
	allowed := formFields[form]
	for _, fl := range n.fields {
		if _, ok := f[fl.key]; ok && !slices.Contains(allowed, fl.key) {
			d.problems.add(join(path, fl.key), "is not allowed in %s", formDescription(form))
			delete(f, fl.key)
		}
	}

	switch form {
	case "all", "any":
		p := join(path, form)
		list := d.conditions(f[form], p, depth)
		if form == "all" {
			c.All = list
		} else {
			c.Any = list
		}
	case "not":
		p := join(path, "not")
		inner := d.condition(f["not"], p, depth+1)
		c.Not = &inner
	case "in_audience":
		c.InAudience = d.name(f["in_audience"], join(path, "in_audience"))
	case "not_in_audience":
		c.NotInAudience = d.name(f["not_in_audience"], join(path, "not_in_audience"))
	case "column", "relationship":
		if form == "relationship" {
			c.Relationship = d.name(f["relationship"], join(path, "relationship"))
			if v, ok := f["aggregate"]; ok {
				c.Aggregate = Aggregate(d.name(v, join(path, "aggregate")))
			}
			if v, ok := f["within"]; ok {
				c.Within = d.window(v, join(path, "within"))
			}
			if v, ok := f["where"]; ok {
				w := d.condition(v, join(path, "where"), depth+1)
				c.Where = &w
			}
		}
		if v, ok := f["column"]; ok {
			c.Column = d.name(v, join(path, "column"))
		}
		if v, ok := f["operator"]; ok {
			c.Operator = Operator(d.name(v, join(path, "operator")))
		}
		if v, ok := f["value"]; ok {
			c.Value = d.value(v, join(path, "value"))
		}
	}
	return c
}

// formDescription names a form in an error message.
func formDescription(form string) string {
	switch form {
	case "all", "any":
		return "an " + form + " group"
	case "not":
		return "a not condition"
	case "column":
		return "a column condition (within, where and aggregate belong to relationship conditions)"
	case "relationship":
		return "a relationship condition"
	}
	return "an " + form + " condition"
}

func (d *decoder) conditions(n *jnode, path string, depth int) []Condition {
	if n.typ != jArray {
		d.problems.add(path, "expected a list of conditions, got %s", n.typ)
		return []Condition{}
	}
	list := make([]Condition, 0, len(n.items))
	for i, item := range n.items {
		if d.nodes > 4*MaxConditions {
			break
		}
		list = append(list, d.condition(item, index(path, i), depth+1))
	}
	return list
}

// name decodes a non-empty string.
func (d *decoder) name(n *jnode, path string) string {
	if n.typ != jString {
		d.problems.add(path, "expected a string, got %s", n.typ)
		return ""
	}
	if n.str == "" {
		d.problems.add(path, "must not be empty")
	}
	return n.str
}

var windowFields = []string{"column", "last_days"}

func (d *decoder) window(n *jnode, path string) *Window {
	w := &Window{}
	if n.typ != jObject {
		d.problems.add(path, "expected an object such as {\"column\": \"ordered_at\", \"last_days\": 90}, got %s", n.typ)
		return w
	}
	f := d.fields(n, path, windowFields)
	if v, ok := f["column"]; ok {
		w.Column = d.name(v, join(path, "column"))
	} else {
		d.problems.add(join(path, "column"), "is required: a date or timestamp column of the related model")
	}
	if v, ok := f["last_days"]; ok {
		p := join(path, "last_days")
		if v.typ != jNumber {
			d.problems.add(p, "expected a whole number of days, got %s", v.typ)
		} else if days, ok := wholeNumber(v.num); !ok {
			d.problems.add(p, "expected a whole number of days")
		} else if days < 1 || days > MaxDays {
			d.problems.add(p, "must be between 1 and %d", MaxDays)
		} else {
			w.LastDays = int(days)
		}
	} else {
		d.problems.add(join(path, "last_days"), "is required: the number of days back from now")
	}
	return w
}

// value decodes an operand: a scalar or a list of scalars.
func (d *decoder) value(n *jnode, path string) any {
	switch n.typ {
	case jArray:
		list := make([]any, 0, len(n.items))
		for i, item := range n.items {
			d.values++
			if d.values > MaxValues {
				d.problems.add(path, "too many values: a definition may have at most %d", MaxValues)
				return list
			}
			p := index(path, i)
			if item.typ == jArray || item.typ == jObject || item.typ == jNull {
				d.problems.add(p, "expected a string, number or boolean, got %s", item.typ)
				continue
			}
			list = append(list, d.scalar(item))
		}
		return list
	case jObject:
		d.problems.add(path, "expected a string, number, boolean or list, got an object")
		return nil
	case jNull:
		d.problems.add(path, "must not be null; to select missing values use the operator is_null without a value")
		return nil
	}
	d.values++
	return d.scalar(n)
}

func (d *decoder) scalar(n *jnode) any {
	switch n.typ {
	case jString:
		return n.str
	case jNumber:
		return n.num
	case jBool:
		return n.b
	}
	return nil
}

// wholeNumber reads a JSON number that is a whole number (1, 1.0, 1e2) and
// fits an int64.
func wholeNumber(num json.Number) (int64, bool) {
	if i, err := strconv.ParseInt(string(num), 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || math.IsInf(f, 0) || f != math.Trunc(f) || f >= 1<<63 || f < -(1<<63) {
		return 0, false
	}
	return int64(f), true
}
