package audience

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// Compilation limits.
const (
	// MaxInclusionDepth is how deeply audiences may include each other:
	// an audience that includes one that includes another is depth 2.
	MaxInclusionDepth = 8
	// MaxArgs is the number of bound values of one compiled query (SQLite
	// allows 32766 by default).
	MaxArgs = 10000
	// MaxSQLBytes is the length of one compiled query (the embedded
	// warehouse refuses more than 1 MiB).
	MaxSQLBytes = 512 << 10
	// MaxMembers is the largest limit Members accepts.
	MaxMembers = 10000
	// MaxExpandedConditions is how many conditions Compile expands in
	// all, those of the audiences it inlines (and theirs) included, with
	// each inclusion counting as one more. Inclusions multiply: an
	// audience that includes another six times, eight levels deep, would
	// inline millions of conditions, so Compile counts while it expands
	// and stops at this bound, before the SQL is built.
	MaxExpandedConditions = 10000
)

// Compiled is a SQL statement, or a predicate, with its bound values in
// the order of its ? placeholders. Every value of the definition is in
// Args, never in SQL.
type Compiled struct {
	SQL  string `json:"sql"`
	Args []any  `json:"args"`
}

// Options configure Compile.
type Options struct {
	// Dialect is the SQL dialect of the warehouse the query will run on:
	// its Name must be "sqlite" or "trino".
	Dialect store.Dialect
	// Now is the time the audience is computed at: within_last_days and
	// time windows count back from it. Compile truncates it to the second,
	// in UTC.
	Now time.Time
	// AudienceID is the id of the audience being compiled, when it is a
	// saved one, so that including itself (directly or through others) is
	// reported as a cycle.
	AudienceID string
}

// Query is a compiled audience: the parent model as a FROM item and the
// predicate its members meet, ready to count, to sample or to use in a
// larger query.
type Query struct {
	model   store.Model
	dialect store.Dialect
	alias   string
	from    string
	where   Compiled
}

// parentAlias names the parent model's rows in compiled SQL; related rows
// are r1, r2, and so on.
const parentAlias = "p"

// Compile validates a definition (as Validate does) and compiles it to SQL
// for opts.Dialect. Included audiences are read from cat, parsed,
// validated and compiled in place (their predicate is over the same rows);
// an inclusion cycle, inclusions nested deeper than MaxInclusionDepth and
// an included audience that is no longer valid are problems of a
// *ValidationError. A definition that, with its inclusions, expands to
// more than MaxExpandedConditions conditions, and a query over MaxArgs
// values or MaxSQLBytes, are errors wrapping ErrTooComplex: expansion stops
// as soon as a bound is passed. Both wrap store.ErrInvalid; any other
// error is a catalog failure or a bad Options.
//
// Values are bound, never written into the SQL. For SQLite a string,
// integer, number or boolean is bound as a Go string, int64, float64 or
// bool; a date as "YYYY-MM-DD" text and a timestamp as UTC text
// "YYYY-MM-DD HH:MM:SS" (with a fraction only when it has one), the way the
// embedded warehouse stores them, so text comparison is time order. For
// Trino, the driver sends parameters as literals and has no float64 or
// zone-less time.Time: a number is bound as its decimal text inside
// CAST(? AS DOUBLE), a date as text inside CAST(? AS DATE) and a timestamp
// as "YYYY-MM-DD HH:MM:SS" text inside CAST(? AS TIMESTAMP), which Trino
// evaluates as a TIMESTAMP literal (UTC, no time zone).
func Compile(def *Definition, cat Catalog, opts Options) (*Query, error) {
	if opts.Dialect == nil {
		return nil, errors.New("compile audience: no dialect")
	}
	var trino bool
	switch opts.Dialect.Name() {
	case "sqlite":
	case "trino":
		trino = true
	default:
		return nil, fmt.Errorf("compile audience: unsupported dialect %q", opts.Dialect.Name())
	}
	if opts.Now.IsZero() {
		return nil, errors.New("compile audience: no time to compute it at (Options.Now)")
	}
	res, err := validate(def, cat)
	if err != nil {
		return nil, err
	}
	c := &compiler{
		d:      opts.Dialect,
		trino:  trino,
		cat:    cat,
		now:    opts.Now.UTC().Truncate(time.Second),
		parent: res.model,
	}
	if opts.AudienceID != "" {
		c.stack, c.base = []string{opts.AudienceID}, 1
	}
	alias := c.d.QuoteIdent(parentAlias)
	pred := c.expr(res.root, alias, "")
	from := c.source(res.model) + " AS " + alias
	if c.err != nil {
		return nil, c.err
	}
	if err := c.problems.err(); err != nil {
		return nil, err
	}
	if c.expanded > MaxExpandedConditions {
		return nil, fmt.Errorf("%w: with the audiences it includes, and theirs, it expands to more than %d conditions; include fewer audiences, or include ones that include fewer: %w",
			ErrTooComplex, MaxExpandedConditions, store.ErrInvalid)
	}
	if c.tooBig || len(c.args) > MaxArgs || len(pred) > MaxSQLBytes {
		return nil, fmt.Errorf("%w: it needs more than %d values or %d bytes of SQL (count the audiences it includes, and theirs); use fewer values or inclusions: %w",
			ErrTooComplex, MaxArgs, MaxSQLBytes, store.ErrInvalid)
	}
	return &Query{
		model:   res.model,
		dialect: opts.Dialect,
		alias:   alias,
		from:    from,
		where:   Compiled{SQL: pred, Args: c.args},
	}, nil
}

// Model returns the parent model.
func (q *Query) Model() store.Model { return q.model }

// Alias returns the quoted alias the predicate uses for the parent
// model's rows.
func (q *Query) Alias() string { return q.alias }

// From returns the parent model as a FROM item with its alias, such as
// `"analytics"."customers" AS "p"`.
func (q *Query) From() string { return q.from }

// Where returns the predicate a row of From must meet to be a member. It
// is self-contained (safe to combine with AND) and its Args are its own
// copy.
func (q *Query) Where() Compiled {
	return Compiled{SQL: q.where.SQL, Args: slices.Clone(q.where.Args)}
}

// Count returns a query of one row and one column, "count": the number of
// members.
func (q *Query) Count() Compiled {
	sql := "SELECT COUNT(*) AS " + q.dialect.QuoteIdent("count") +
		"\nFROM " + q.from +
		"\nWHERE " + q.where.SQL
	return Compiled{SQL: sql, Args: slices.Clone(q.where.Args)}
}

// Members returns a query of at most limit members with the given columns
// of the parent model, in primary key order when the model has one. A
// column that does not exist, a blocked column (PII level blocked, none or
// unknown: it may never leave the warehouse) and a limit outside 1 to
// MaxMembers are a *ValidationError. Masking redacted and sync-only values
// is the caller's job.
func (q *Query) Members(columns []string, limit int) (Compiled, error) {
	var ps problems
	if len(columns) == 0 {
		ps.add("columns", "at least one column is needed")
	}
	if limit < 1 || limit > MaxMembers {
		ps.add("limit", "must be between 1 and %d", MaxMembers)
	}
	var usable []string
	for _, c := range q.model.Columns {
		if filterable(c.PII) {
			usable = append(usable, c.Name)
		}
	}
	list := make([]string, 0, len(columns))
	for i, name := range columns {
		col, ok := q.model.Column(name)
		switch {
		case !ok:
			ps.add(index("columns", i), "%s", unknownName("column", name, "on model "+q.model.Name, usable))
		case !filterable(col.PII):
			ps.add(index("columns", i), "column %q of model %s is blocked: it never leaves the warehouse", name, q.model.Name)
		default:
			list = append(list, q.alias+"."+q.dialect.QuoteIdent(col.Name))
		}
	}
	if err := ps.err(); err != nil {
		return Compiled{}, err
	}
	sql := "SELECT " + strings.Join(list, ", ") +
		"\nFROM " + q.from +
		"\nWHERE " + q.where.SQL
	if pk, ok := q.model.Column(q.model.PrimaryKey); ok && pk.Name != "" {
		sql += "\nORDER BY " + q.alias + "." + q.dialect.QuoteIdent(pk.Name)
	}
	// The limit is an int the caller chose, checked above, not a value
	// of the definition: written as a literal, it works in both engines.
	sql += "\nLIMIT " + strconv.Itoa(limit)
	return Compiled{SQL: sql, Args: slices.Clone(q.where.Args)}, nil
}

// compiler writes SQL for a resolved definition, appending bound values
// in the order their placeholders appear.
type compiler struct {
	d      store.Dialect
	trino  bool
	cat    Catalog
	now    time.Time
	parent store.Model

	args      []any
	nextAlias int
	// stack holds the audiences being compiled, outermost first.
	stack []string
	// base is 1 when stack starts with the audience being compiled, which
	// is not an inclusion.
	base     int
	problems problems
	err      error
	tooBig   bool
	// expanded counts the conditions expanded so far, inlined ones
	// included; past MaxExpandedConditions, tooBig is set and nothing more
	// is expanded.
	expanded int
	// includedAt is the path of the inclusion being compiled, in the
	// definition passed to Compile.
	includedAt string
}

func (c *compiler) q(name string) string { return c.d.QuoteIdent(name) }

// source is a model as a FROM item without alias (store.Model.Relation):
// its quoted table name, or its SQL in parentheses. The SQL is the model's
// own, which the warehouse's CheckSQL vetted when the model was saved; the
// engine checks it again when the query runs.
func (c *compiler) source(m store.Model) string {
	rel, err := m.Relation(c.d)
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("compile audience: %w", err)
	}
	return rel
}

// expr compiles a condition over the rows named alias. ind is the
// indentation of its continuation lines.
func (c *compiler) expr(n *rnode, alias, ind string) string {
	// Count before expanding: the bound must stop a fan-out of inclusions
	// before it is built, not measure it afterwards.
	if c.expanded++; c.expanded > MaxExpandedConditions {
		c.tooBig = true
	}
	if c.tooBig {
		return "FALSE"
	}
	switch n.kind {
	case kindAll:
		return c.group("AND", "TRUE", n.kids, alias, ind)
	case kindAny:
		return c.group("OR", "FALSE", n.kids, alias, ind)
	case kindNot:
		// A condition on a missing value is unknown; not of it holds.
		return "NOT COALESCE(" + c.expr(n.kids[0], alias, ind+"  ") + ", FALSE)"
	case kindColumn:
		return c.compare(alias+"."+c.q(n.col.Name), n)
	case kindRelationship:
		return c.related(n, alias, ind)
	case kindInAudience, kindNotInAudience:
		return c.include(n, alias, ind)
	}
	c.err = fmt.Errorf("compile audience: %s: unexpected condition", n.path)
	return "FALSE"
}

func (c *compiler) group(op, empty string, kids []*rnode, alias, ind string) string {
	switch len(kids) {
	case 0:
		return empty
	case 1:
		return c.expr(kids[0], alias, ind)
	}
	var b strings.Builder
	b.WriteByte('(')
	for i, k := range kids {
		if i > 0 {
			b.WriteString("\n" + ind + "  " + op + " ")
		}
		b.WriteString(c.expr(k, alias, ind+"    "))
	}
	b.WriteByte(')')
	return b.String()
}

// bind appends a value and returns its placeholder.
func (c *compiler) bind(v tval, typ string) string {
	if len(c.args) >= MaxArgs {
		c.tooBig = true
	}
	switch typ {
	case typeString:
		c.args = append(c.args, v.s)
	case typeInteger:
		c.args = append(c.args, v.i)
	case typeBoolean:
		c.args = append(c.args, v.b)
	case typeNumber:
		if c.trino {
			c.args = append(c.args, strconv.FormatFloat(v.f, 'g', -1, 64))
			return "CAST(? AS DOUBLE)"
		}
		c.args = append(c.args, v.f)
	case typeDate:
		c.args = append(c.args, v.t.Format(time.DateOnly))
		if c.trino {
			return "CAST(? AS DATE)"
		}
	case typeTimestamp:
		c.args = append(c.args, v.t.UTC().Format("2006-01-02 15:04:05.999999999"))
		if c.trino {
			return "CAST(? AS TIMESTAMP)"
		}
	default:
		c.err = fmt.Errorf("compile audience: cannot bind a value of type %q", typ)
	}
	return "?"
}

// nextDay is the start of the day after a date-valued timestamp.
func nextDay(v tval) tval { return tval{t: v.t.AddDate(0, 0, 1)} }

// compare compiles lhs (a column or an aggregate subquery) against the
// condition's values.
func (c *compiler) compare(lhs string, n *rnode) string {
	ts := n.typ == typeTimestamp
	b := func(v tval) string { return c.bind(v, n.typ) }
	var v0, v1 tval
	if len(n.vals) > 0 {
		v0 = n.vals[0]
	}
	if len(n.vals) > 1 {
		v1 = n.vals[1]
	}
	switch n.op {
	case Equals:
		if ts && v0.day {
			return "(" + lhs + " >= " + b(v0) + " AND " + lhs + " < " + b(nextDay(v0)) + ")"
		}
		return lhs + " = " + b(v0)
	case NotEquals:
		if ts && v0.day {
			return "(" + lhs + " < " + b(v0) + " OR " + lhs + " >= " + b(nextDay(v0)) + ")"
		}
		return lhs + " <> " + b(v0)
	case Contains, NotContains, StartsWith, EndsWith:
		return c.match(lhs, n.op, v0.s)
	case GreaterThan:
		if ts && v0.day {
			return lhs + " >= " + b(nextDay(v0))
		}
		return lhs + " > " + b(v0)
	case GreaterOrEqual:
		return lhs + " >= " + b(v0)
	case LessThan:
		return lhs + " < " + b(v0)
	case LessOrEqual:
		if ts && v0.day {
			return lhs + " < " + b(nextDay(v0))
		}
		return lhs + " <= " + b(v0)
	case Between:
		if ts {
			lower := lhs + " >= " + b(v0)
			if v1.day {
				return "(" + lower + " AND " + lhs + " < " + b(nextDay(v1)) + ")"
			}
			return "(" + lower + " AND " + lhs + " <= " + b(v1) + ")"
		}
		return lhs + " BETWEEN " + b(v0) + " AND " + b(v1)
	case NotBetween:
		if ts {
			lower := lhs + " < " + b(v0)
			if v1.day {
				return "(" + lower + " OR " + lhs + " >= " + b(nextDay(v1)) + ")"
			}
			return "(" + lower + " OR " + lhs + " > " + b(v1) + ")"
		}
		return lhs + " NOT BETWEEN " + b(v0) + " AND " + b(v1)
	case In, NotIn:
		ph := make([]string, len(n.vals))
		for i, v := range n.vals {
			ph[i] = b(v)
		}
		kw := " IN ("
		if n.op == NotIn {
			kw = " NOT IN ("
		}
		return lhs + kw + strings.Join(ph, ", ") + ")"
	case IsNull:
		return lhs + " IS NULL"
	case IsNotNull:
		return lhs + " IS NOT NULL"
	case IsTrue:
		return lhs + " = TRUE"
	case IsFalse:
		return lhs + " = FALSE"
	case WithinLastDays:
		return "(" + c.window(lhs, n.typ, int(v0.i)) + ")"
	}
	c.err = fmt.Errorf("compile audience: %s: unexpected operator %q", n.path, n.op)
	return "FALSE"
}

// window compiles "col lies within the last days days": from days before
// now up to now, both included. For a date column the bounds are dates
// (today's date in UTC and the date days before it).
func (c *compiler) window(col, typ string, days int) string {
	hi := tval{t: c.now}
	if typ == typeDate {
		y, m, d := c.now.Date()
		hi = tval{t: time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
	}
	lo := tval{t: hi.t.AddDate(0, 0, -days)}
	return col + " >= " + c.bind(lo, typ) + " AND " + col + " <= " + c.bind(hi, typ)
}

// match compiles the string operators. Both dialects compare case
// sensitively, as equals does: SQLite with GLOB, Trino with LIKE (SQLite's
// LIKE ignores ASCII case, Trino's does not). The value becomes a bound
// pattern with its wildcard characters escaped.
func (c *compiler) match(lhs string, op Operator, s string) string {
	var esc, wild, kw string
	if c.trino {
		esc = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
		wild, kw = "%", "LIKE"
	} else {
		esc = strings.NewReplacer(`*`, `[*]`, `?`, `[?]`, `[`, `[[]`).Replace(s)
		wild, kw = "*", "GLOB"
	}
	var pattern string
	switch op {
	case Contains, NotContains:
		pattern = wild + esc + wild
	case StartsWith:
		pattern = esc + wild
	case EndsWith:
		pattern = wild + esc
	}
	if op == NotContains {
		kw = "NOT " + kw
	}
	c.args = append(c.args, pattern)
	if c.trino {
		return lhs + " " + kw + ` ? ESCAPE '\'`
	}
	return lhs + " " + kw + " ?"
}

// related compiles a related-model condition as a correlated subquery
// that aggregates the related rows whose foreign key is the parent row's
// referenced column.
func (c *compiler) related(n *rnode, alias, ind string) string {
	c.nextAlias++
	ra := c.q("r" + strconv.Itoa(c.nextAlias))
	in := ind + "    "
	var agg string
	switch n.agg {
	case Count:
		agg = "COUNT(*)"
	case Sum:
		// A sum over no rows is 0, so "spent less than 100" includes
		// those who spent nothing.
		agg = "COALESCE(SUM(" + ra + "." + c.q(n.col.Name) + "), 0)"
	case Min, Max, Avg:
		agg = strings.ToUpper(string(n.agg)) + "(" + ra + "." + c.q(n.col.Name) + ")"
	}
	conds := []string{ra + "." + c.q(n.rel.ForeignKey) + " = " + alias + "." + c.q(n.rel.References)}
	if n.within != nil {
		conds = append(conds, c.window(ra+"."+c.q(n.within.Name), columnType(*n.within), n.days))
	}
	if n.where != nil {
		conds = append(conds, c.expr(n.where, ra, in+"    "))
	}
	sub := "(SELECT " + agg +
		"\n" + in + "FROM " + c.source(n.relModel) + " AS " + ra +
		"\n" + in + "WHERE " + strings.Join(conds, "\n"+in+"  AND ") + ")"
	return c.compare(sub, n)
}

// include compiles an included audience in place: its predicate over the
// same rows, negated for not_in_audience.
func (c *compiler) include(n *rnode, alias, ind string) string {
	id := n.audience
	if c.tooBig || c.err != nil {
		return "FALSE"
	}
	// Problems inside included audiences are reported at the inclusion in
	// the definition being compiled: that is the path its author can act
	// on, and the message names the audiences involved.
	path := c.includedAt
	if path == "" {
		path = join(n.path, string(n.kind))
		c.includedAt = path
		defer func() { c.includedAt = "" }()
	}
	if slices.Contains(c.stack, id) {
		chain := append(slices.Clone(c.stack), id)
		c.problems.add(path, "audience %q includes itself: %s; remove one of these inclusions", id, strings.Join(chain, " -> "))
		return "FALSE"
	}
	if len(c.stack)-c.base >= MaxInclusionDepth {
		c.problems.add(path, "audiences include each other more than %d levels deep (%s -> %s)", MaxInclusionDepth, strings.Join(c.stack, " -> "), id)
		return "FALSE"
	}
	a, err := c.cat.Audience(id)
	if errors.Is(err, store.ErrNotFound) {
		c.problems.add(path, "audience %q does not exist", id)
		return "FALSE"
	}
	if err != nil {
		c.err = fmt.Errorf("compile audience: look up audience %q: %w", id, err)
		return "FALSE"
	}
	def, err := ParseSaved(a)
	var res *resolved
	if err == nil {
		res, err = validate(def, c.cat)
	}
	if err != nil {
		if ve, ok := asValidation(err); ok {
			c.problems.add(path, "audience %q is no longer valid, fix it first: %s", id, strings.TrimPrefix(ve.Error(), "invalid audience definition: "))
		} else {
			c.err = fmt.Errorf("compile audience: included audience %q: %w", id, err)
		}
		return "FALSE"
	}
	if !sameModel(res.model.ID, c.parent) && !sameModel(res.model.Name, c.parent) {
		c.problems.add(path, "audience %q is over model %s, not %s: only audiences over the same model can be included", id, res.model.Name, c.parent.Name)
		return "FALSE"
	}
	c.stack = append(c.stack, id)
	s := c.expr(res.root, alias, ind)
	c.stack = c.stack[:len(c.stack)-1]
	if len(s) > MaxSQLBytes || len(c.args) > MaxArgs {
		c.tooBig = true
	}
	if n.kind == kindNotInAudience {
		return "NOT COALESCE(" + s + ", FALSE)"
	}
	return s
}
