package audience

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// Catalog is what validation and compilation need to know about the
// workspace: its models (the parent model and the models its relationships
// point to) and its saved audiences (for in_audience and not_in_audience).
// Snapshot is an implementation over lists held in memory.
type Catalog interface {
	// Model returns the model with this id, when the reference has the
	// form of a model id (store.IsModelID), else the model with this
	// name. An unknown model is an error wrapping store.ErrNotFound; any
	// other error is a failure of the catalog and ends validation.
	Model(nameOrID string) (store.Model, error)
	// Audience returns the saved audience with this id, with its model id
	// and its definition. An unknown audience is an error wrapping
	// store.ErrNotFound.
	Audience(id string) (store.Audience, error)
}

// modelLister is implemented by catalogs that can list their model names,
// for "did you mean" suggestions.
type modelLister interface {
	ModelNames() []string
}

// Short names for the model column types.
const (
	typeInteger   = store.TypeInteger
	typeString    = store.TypeString
	typeNumber    = store.TypeNumber
	typeBoolean   = store.TypeBoolean
	typeDate      = store.TypeDate
	typeTimestamp = store.TypeTimestamp
)

// operatorTypes are the column types each operator applies to; is_null
// and is_not_null apply to every column.
var operatorTypes = map[Operator][]string{
	Equals:         {typeString, typeInteger, typeNumber, typeBoolean, typeDate, typeTimestamp},
	NotEquals:      {typeString, typeInteger, typeNumber, typeBoolean, typeDate, typeTimestamp},
	Contains:       {typeString},
	NotContains:    {typeString},
	StartsWith:     {typeString},
	EndsWith:       {typeString},
	GreaterThan:    {typeInteger, typeNumber, typeDate, typeTimestamp},
	GreaterOrEqual: {typeInteger, typeNumber, typeDate, typeTimestamp},
	LessThan:       {typeInteger, typeNumber, typeDate, typeTimestamp},
	LessOrEqual:    {typeInteger, typeNumber, typeDate, typeTimestamp},
	Between:        {typeInteger, typeNumber, typeDate, typeTimestamp},
	NotBetween:     {typeInteger, typeNumber, typeDate, typeTimestamp},
	In:             {typeString, typeInteger, typeNumber, typeDate},
	NotIn:          {typeString, typeInteger, typeNumber, typeDate},
	IsTrue:         {typeBoolean},
	IsFalse:        {typeBoolean},
	WithinLastDays: {typeDate, typeTimestamp},
}

// appliesTo reports whether op applies to a column of type typ.
func appliesTo(op Operator, typ string) bool {
	if op == IsNull || op == IsNotNull {
		return true
	}
	return slices.Contains(operatorTypes[op], typ)
}

// operatorsFor lists the operators that apply to a column type.
func operatorsFor(typ string) []Operator {
	var ops []Operator
	for _, op := range Operators {
		if appliesTo(op, typ) {
			ops = append(ops, op)
		}
	}
	return ops
}

// filterable reports whether conditions may use a column of this PII
// level. Only blocked columns are refused, and a missing or unknown level
// counts as blocked. Redacted and sync-only columns may be filtered on:
// the compiled query returns membership, never the column's value.
func filterable(pii string) bool {
	switch pii {
	case store.PIINone, store.PIIRedacted, store.PIISyncOnly:
		return true
	}
	return false
}

// columnType is a column's type, normalized.
func columnType(c store.Column) string {
	return strings.ToLower(strings.TrimSpace(c.Type))
}

// Validate checks a definition against its model: Check's structural
// checks, then that the model exists and every column, relationship and
// included audience does; that operators fit the columns' types and values
// fit the columns (a date for a date column, a whole number for an integer
// column); that aggregates apply to numeric columns and time windows to
// dates or timestamps; and that no condition uses a blocked column (or one
// with no or an unknown PII level). Problems come as one *ValidationError,
// with paths and, for a misspelt name, a suggestion. Another error means
// the catalog failed.
//
// Validate checks that an included audience exists and is over the same
// model, not what it includes in turn: cycles through inclusions are found
// when the definition is compiled (Compile), since the audiences involved
// may change between the two.
func Validate(def *Definition, cat Catalog) error {
	_, err := validate(def, cat)
	return err
}

// rnode is a condition resolved against its model: the columns, models and
// typed values the compiler uses. Every identifier in it comes from a
// store.Model, never from the definition.
type rnode struct {
	kind kind
	path string
	kids []*rnode

	// Comparisons (column and relationship conditions).
	col  store.Column
	typ  string // the compared value's type
	op   Operator
	vals []tval

	// Relationship conditions.
	rel      store.Relationship
	relModel store.Model
	agg      Aggregate
	within   *store.Column
	days     int
	where    *rnode

	// Inclusions.
	audience string
}

// tval is a value converted for its column.
type tval struct {
	s string
	i int64
	f float64
	b bool
	t time.Time
	// day marks a timestamp given as a date: the whole UTC day.
	day bool
}

// resolved is a validated definition.
type resolved struct {
	model store.Model
	root  *rnode
}

type validator struct {
	cat      Catalog
	problems problems
	err      error // a catalog failure
}

func validate(def *Definition, cat Catalog) (*resolved, error) {
	if err := Check(def); err != nil {
		return nil, err
	}
	if cat == nil {
		return nil, errors.New("validate audience: no catalog")
	}
	v := &validator{cat: cat}
	parent, ok := v.model(def.Model, "model")
	if !ok {
		if v.err != nil {
			return nil, v.err
		}
		return nil, v.problems.err()
	}
	root := v.condition(&def.Conditions, "conditions", parent)
	if v.err != nil {
		return nil, v.err
	}
	if err := v.problems.err(); err != nil {
		return nil, err
	}
	return &resolved{model: parent, root: root}, nil
}

// model looks a model up and checks that it can be compiled.
func (v *validator) model(name, path string) (store.Model, bool) {
	m, err := v.cat.Model(name)
	if errors.Is(err, store.ErrNotFound) {
		var names []string
		if l, ok := v.cat.(modelLister); ok {
			names = l.ModelNames()
		}
		v.problems.add(path, "%s", unknownName("model", name, "", names))
		return store.Model{}, false
	}
	if err != nil {
		v.err = fmt.Errorf("validate audience: look up model %q: %w", name, err)
		return store.Model{}, false
	}
	if err := checkRelation(m); err != nil {
		v.problems.add(path, "model %s cannot be queried: %s", m.Name, strings.TrimSuffix(err.Error(), ": "+store.ErrInvalid.Error()))
		return store.Model{}, false
	}
	// A count says which rows a model has: when its primary key is
	// blocked (its rows depend on a blocked column, or nobody classified
	// what it reads), no audience may count them.
	if pk, ok := m.Column(m.PrimaryKey); !ok || !filterable(pk.PII) {
		v.problems.add(path, "model %s cannot be used in audiences: its primary key %s is blocked (its rows depend on blocked or unclassified warehouse columns)", m.Name, m.PrimaryKey)
		return store.Model{}, false
	}
	return m, true
}

// checkRelation checks that a model can be read FROM, as
// store.Model.Relation will write it: a schema.table or SQL.
func checkRelation(m store.Model) error {
	_, err := m.Relation(plainDialect{})
	return err
}

// plainDialect quotes like both supported dialects; it serves to check a
// model's relation before the dialect is known.
type plainDialect struct{}

func (plainDialect) Name() string { return "" }

func (plainDialect) QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// column finds a column on m for use in a condition: it must exist and
// must not be blocked.
func (v *validator) column(m store.Model, name, path string) (store.Column, bool) {
	var usable []string
	for _, c := range m.Columns {
		if c.Name == name {
			if !filterable(c.PII) {
				level := c.PII
				if level == "" {
					level = "not set"
				}
				v.problems.add(path, "column %q of model %s is blocked (PII level %s): a blocked column can never be used to select people", name, m.Name, level)
				return store.Column{}, false
			}
			return c, true
		}
		if filterable(c.PII) {
			usable = append(usable, c.Name)
		}
	}
	v.problems.add(path, "%s", unknownName("column", name, "on model "+m.Name, usable))
	return store.Column{}, false
}

func (v *validator) condition(c *Condition, path string, m store.Model) *rnode {
	n := &rnode{kind: c.kind(), path: path}
	switch n.kind {
	case kindAll:
		for i := range c.All {
			n.kids = append(n.kids, v.condition(&c.All[i], index(join(path, "all"), i), m))
		}
	case kindAny:
		for i := range c.Any {
			n.kids = append(n.kids, v.condition(&c.Any[i], index(join(path, "any"), i), m))
		}
	case kindNot:
		n.kids = []*rnode{v.condition(c.Not, join(path, "not"), m)}
	case kindColumn:
		v.columnCondition(c, path, m, n)
	case kindRelationship:
		v.relationship(c, path, m, n)
	case kindInAudience, kindNotInAudience:
		id, p := c.InAudience, join(path, "in_audience")
		if n.kind == kindNotInAudience {
			id, p = c.NotInAudience, join(path, "not_in_audience")
		}
		n.audience = id
		v.audience(id, p, m)
	}
	return n
}

func (v *validator) columnCondition(c *Condition, path string, m store.Model, n *rnode) {
	col, ok := v.column(m, c.Column, join(path, "column"))
	if !ok {
		return
	}
	n.col, n.op, n.typ = col, c.Operator, columnType(col)
	if !appliesTo(c.Operator, n.typ) {
		v.problems.add(join(path, "operator"), "%s", mismatch(c.Operator, col))
		return
	}
	n.vals = v.values(c.Value, join(path, "value"), c.Operator, n.typ)
}

// mismatch explains that an operator does not apply to a column.
func mismatch(op Operator, col store.Column) string {
	typ := columnType(col)
	ops := operatorsFor(typ)
	names := make([]string, len(ops))
	for i, o := range ops {
		names[i] = string(o)
	}
	what := typ
	if what == "" {
		what = "no type"
	}
	msg := fmt.Sprintf("operator %s does not apply to column %s (%s)", op, col.Name, what)
	switch op {
	case WithinLastDays:
		msg = fmt.Sprintf("operator within_last_days applies to date and timestamp columns; column %s is %s", col.Name, what)
	case Contains, NotContains, StartsWith, EndsWith:
		msg = fmt.Sprintf("operator %s applies to string columns; column %s is %s", op, col.Name, what)
	}
	return msg + "; it takes " + strings.Join(names, ", ")
}

// values converts a condition's value for a column of type typ.
func (v *validator) values(raw any, path string, op Operator, typ string) []tval {
	switch operatorShapes[op] {
	case shapeNone:
		return nil
	case shapeDays:
		sv, _ := toScalar(raw)
		days, _ := wholeNumber(json.Number(sv.s))
		return []tval{{i: days}}
	case shapeScalar:
		t, ok := v.convert(raw, path, typ)
		if !ok {
			return nil
		}
		if t.s == "" && typ == typeString && (op == Contains || op == NotContains || op == StartsWith || op == EndsWith) {
			v.problems.add(path, "must not be empty with %s", op)
		}
		return []tval{t}
	}
	list, _ := asList(raw)
	out := make([]tval, 0, len(list))
	for i, item := range list {
		t, ok := v.convert(item, index(path, i), typ)
		if ok {
			out = append(out, t)
		}
	}
	if len(out) != len(list) {
		return nil
	}
	if (op == Between || op == NotBetween) && less(out[1], out[0], typ) {
		v.problems.add(path, "the lower bound comes first: [low, high]")
	}
	return out
}

// less orders two values of a type that has an order.
func less(a, b tval, typ string) bool {
	switch typ {
	case typeInteger:
		return a.i < b.i
	case typeNumber:
		return a.f < b.f
	case typeDate, typeTimestamp:
		return a.t.Before(b.t)
	}
	return false
}

// Accepted timestamp layouts. A fractional second is accepted after the
// seconds of each.
var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
}

// convert converts one value for a column of type typ.
func (v *validator) convert(raw any, path, typ string) (tval, bool) {
	sv, msg := toScalar(raw)
	if msg != "" {
		v.problems.add(path, "%s", msg)
		return tval{}, false
	}
	fail := func(format string, args ...any) (tval, bool) {
		v.problems.add(path, format, args...)
		return tval{}, false
	}
	switch typ {
	case typeString:
		if sv.typ != jString {
			return fail("expected a string, got %s (write it in quotes: \"%s\")", sv.typ, sv.s)
		}
		return tval{s: sv.s}, true
	case typeInteger:
		if sv.typ != jNumber {
			return fail("expected a whole number, got %s", sv.typ)
		}
		i, ok := wholeNumber(json.Number(sv.s))
		if !ok {
			return fail("expected a whole number, got %s", sv.s)
		}
		return tval{i: i}, true
	case typeNumber:
		if sv.typ != jNumber {
			return fail("expected a number, got %s", sv.typ)
		}
		f, err := strconv.ParseFloat(sv.s, 64)
		if err != nil {
			return fail("expected a number, got %s", sv.s)
		}
		return tval{f: f}, true
	case typeBoolean:
		if sv.typ != jBool {
			return fail("expected true or false, got %s", sv.typ)
		}
		return tval{b: sv.b}, true
	case typeDate:
		if sv.typ != jString {
			return fail("expected a date such as \"2024-05-31\", got %s", sv.typ)
		}
		t, err := time.Parse(time.DateOnly, sv.s)
		if err != nil {
			return fail("expected a date such as \"2024-05-31\", got %q", sv.s)
		}
		return tval{t: t}, true
	case typeTimestamp:
		if sv.typ != jString {
			return fail("expected a timestamp such as \"2024-05-31 14:00:00\" (UTC) or a date, got %s", sv.typ)
		}
		if t, err := time.Parse(time.DateOnly, sv.s); err == nil {
			return tval{t: t, day: true}, true
		}
		for _, layout := range timestampLayouts {
			if t, err := time.Parse(layout, sv.s); err == nil {
				return tval{t: t.UTC()}, true
			}
		}
		return fail("expected a timestamp such as \"2024-05-31 14:00:00\" (UTC), \"2024-05-31T14:00:00+02:00\" or a date, got %q", sv.s)
	}
	return fail("column type %q cannot be compared with a value", typ)
}

func (v *validator) relationship(c *Condition, path string, m store.Model, n *rnode) {
	rp := join(path, "relationship")
	var names []string
	found := false
	for _, r := range m.Relationships {
		if r.Name == c.Relationship {
			n.rel, found = r, true
			break
		}
		names = append(names, r.Name)
	}
	if !found {
		if len(names) == 0 {
			v.problems.add(rp, "model %s has no relationships to other models", m.Name)
		} else {
			v.problems.add(rp, "%s", unknownName("relationship", c.Relationship, "on model "+m.Name, names))
		}
		return
	}
	related, err := v.cat.Model(n.rel.Model)
	if errors.Is(err, store.ErrNotFound) {
		v.problems.add(rp, "relationship %s points to model %q, which does not exist", n.rel.Name, n.rel.Model)
		return
	}
	if err != nil {
		v.err = fmt.Errorf("validate audience: look up model %q: %w", n.rel.Model, err)
		return
	}
	if err := checkRelation(related); err != nil {
		v.problems.add(rp, "model %s cannot be queried: %s", related.Name, strings.TrimSuffix(err.Error(), ": "+store.ErrInvalid.Error()))
		return
	}
	n.relModel = related
	if _, ok := related.Column(n.rel.ForeignKey); !ok {
		v.problems.add(rp, "relationship %s cannot be used: its foreign key %q is not a column of model %s", n.rel.Name, n.rel.ForeignKey, related.Name)
		return
	}
	if _, ok := m.Column(n.rel.References); !ok {
		v.problems.add(rp, "relationship %s cannot be used: the column it references, %q, is not a column of model %s", n.rel.Name, n.rel.References, m.Name)
		return
	}
	n.agg, n.op = c.Aggregate, c.Operator
	n.typ = typeNumber
	if c.Aggregate == Count {
		n.typ = typeInteger
	} else if col, ok := v.column(related, c.Column, join(path, "column")); ok {
		n.col = col
		if t := columnType(col); t != typeInteger && t != typeNumber {
			v.problems.add(join(path, "column"), "cannot %s column %s of model %s (%s): sum, min, max and avg need an integer or number column; to count rows use the aggregate count",
				c.Aggregate, col.Name, related.Name, t)
		}
	}
	n.vals = v.values(c.Value, join(path, "value"), c.Operator, n.typ)
	if c.Within != nil {
		wp := join(join(path, "within"), "column")
		if col, ok := v.column(related, c.Within.Column, wp); ok {
			if t := columnType(col); t != typeDate && t != typeTimestamp {
				v.problems.add(wp, "a time window needs a date or timestamp column; column %s of model %s is %s", col.Name, related.Name, t)
			} else {
				n.within, n.days = &col, c.Within.LastDays
			}
		}
	}
	if c.Where != nil {
		n.where = v.condition(c.Where, join(path, "where"), related)
	}
}

// audience checks that an included audience exists and is over model m.
func (v *validator) audience(id, path string, m store.Model) {
	a, err := v.cat.Audience(id)
	if errors.Is(err, store.ErrNotFound) {
		v.problems.add(path, "audience %q does not exist", id)
		return
	}
	if err != nil {
		v.err = fmt.Errorf("validate audience: look up audience %q: %w", id, err)
		return
	}
	if sameModel(a.ModelID, m) {
		return
	}
	other := a.ModelID
	if om, err := v.cat.Model(a.ModelID); err == nil {
		other = om.Name
	}
	v.problems.add(path, "audience %q is over model %s, not %s: only audiences over the same model can be included", id, other, m.Name)
}

// sameModel reports whether a model id or name refers to m.
func sameModel(idOrName string, m store.Model) bool {
	return idOrName != "" && (idOrName == m.ID || idOrName == m.Name)
}
