// Package audience owns the audience definition language: its Go types and
// strict JSON decoder (Parse), its JSON Schema (Schema), validation against
// a workspace's models and audiences (Validate, through a Catalog), and
// compilation to SQL for the SQLite and Trino warehouses (Compile). The
// tools, approvals, syncs and evals all use it, so an audience means the
// same thing wherever it is previewed, approved or sent.
//
// It imports the store package (domain types, store.Dialect) and the
// standard library only: never mcp-go, server, tools or a database driver.
// Its tests import store/sqlite and store/trino for their dialects and the
// demo warehouse.
//
// # The language
//
// A definition names a parent model and the conditions its rows meet; the
// rows that meet them are the audience's members:
//
//	{
//	  "model": "customers",
//	  "conditions": {"all": [
//	    {"column": "state", "operator": "equals", "value": "CA"},
//	    {"column": "plan", "operator": "equals", "value": "pro"},
//	    {"relationship": "orders", "aggregate": "count",
//	     "operator": "greater_or_equal", "value": 2,
//	     "within": {"column": "ordered_at", "last_days": 90},
//	     "where": {"column": "channel", "operator": "equals", "value": "web"}},
//	    {"not_in_audience": "aud_0192..."}
//	  ]}
//	}
//
// ("customers in California on the pro plan with at least 2 web orders in
// the last 90 days, who are not in that other audience").
//
// A condition is exactly one of:
//
//   - {"all": [...]}: every condition holds (an empty list: every row);
//     {"any": [...]}: at least one holds (never empty);
//   - {"not": {...}}: the condition does not hold;
//   - {"column", "operator", "value"}: a comparison of a column of the
//     model (see Operators);
//   - {"relationship", "aggregate", "column", "operator", "value",
//     "within", "where"}: a condition on the rows of a related model,
//     reached through one of the model's relationships. aggregate is count
//     (no column) or sum, min, max or avg of a numeric column of the related
//     model, compared with a number (equals, not_equals, greater_than,
//     greater_or_equal, less_than, less_or_equal, between, not_between).
//     within keeps the related rows whose date or timestamp column lies in
//     the last last_days days; where keeps those that meet a condition on
//     the related model's columns (groups, not and column conditions only);
//   - {"in_audience": "aud_..."} or {"not_in_audience": "aud_..."}:
//     membership of another saved audience over the same model.
//
// Values are JSON strings, numbers and booleans, or lists of them for
// between and not_between ([low, high], both included) and in and not_in
// (1 to MaxListValues values); is_null, is_not_null, is_true and is_false
// take none; within_last_days takes a whole number of days. Dates are
// "YYYY-MM-DD"; timestamps "YYYY-MM-DD HH:MM:SS" in UTC or RFC 3339 with
// an offset. A date compared with a timestamp column means the whole day
// in UTC: equals "2024-05-01" holds all day, greater_than "2024-05-01"
// from the next midnight on.
//
// Which operators apply to which column type: equals and not_equals to
// every type but json; contains, not_contains, starts_with and ends_with
// to strings; the orderings, between and not_between to integers, numbers,
// dates and timestamps; in and not_in to strings, integers, numbers and
// dates; is_true and is_false to booleans; within_last_days to dates and
// timestamps; is_null and is_not_null to every column.
//
// # Meaning
//
// Missing values: a comparison with a NULL never holds, except is_null.
// The negative operators (not_equals, not_contains, not_between, not_in)
// therefore hold only for rows that have a value: "plan not_equals free"
// is the customers with a plan other than free. not is the complement of
// its condition: {"not": {"column": "plan", "operator": "equals", "value":
// "free"}} also includes the customers with no plan. not_in_audience is a
// not in this sense.
//
// String comparisons are case-sensitive in both engines, like equals.
//
// Aggregates: a count and a sum over no related rows are 0 (so "fewer than
// 1 order" and "spent less than 100" include customers with no orders);
// min, max and avg over no rows are unknown, and no comparison with them
// holds.
//
// Time: within_last_days and within count back from the time Compile is
// given (Options.Now), to the second and in UTC, and include that time:
// [now - N days, now]. For a date column both bounds are dates.
//
// Relationships: a relationship of model M with {"model": R,
// "foreign_key": F, "references": K} links a row of M to the rows of R
// whose column F equals the row's column K; F must be a column of R and K
// a column of M.
//
// # Validation and PII
//
// Parse checks everything that does not need the model; Validate checks the
// rest against the Catalog. Problems come together in one
// *ValidationError, each with a JSON path ("conditions.all[2].value") and a
// message a model can act on, with "did you mean" suggestions for
// misspelt names. ValidationError wraps store.ErrInvalid.
//
// A condition may not use a blocked column, nor a column with no or an
// unknown PII level: a blocked column must never be used to select people,
// since membership would reveal its value. Redacted and sync-only columns
// may be used: the compiled query reads them inside the warehouse and
// returns only which rows are members, never their values (the members
// query returns the columns the caller asks for, and masking those is the
// caller's job; blocked columns are refused there too).
//
// Inclusions: Validate checks that an included audience exists and is over
// the same model. Whether inclusions form a cycle depends on the other
// audiences, which may change between validation and use, so that is
// Compile's job: it inlines each included audience's definition (read from
// the Catalog, parsed and validated again), refuses a cycle (an audience
// that includes itself, directly or not; pass Options.AudienceID when
// compiling a saved audience) and inclusions nested more than
// MaxInclusionDepth deep, and stops with ErrTooComplex when the SQL would
// exceed MaxArgs values or MaxSQLBytes, or as soon as the conditions it
// expands, inlined ones included, pass MaxExpandedConditions (inclusions
// multiply, so that bound is counted while expanding, before any SQL of
// the fan-out is built). Callers that save audiences should
// compile before saving, so a cycle is never stored.
//
// # Model references
//
// A definition's model, and a relationship's, is a model id or a name. A
// reference with the form of a model id (store.IsModelID) is looked up by
// id only, any other by name only (Snapshot.Model), so a model named like
// another model's id can never stand in for it (stores refuse such names
// too). A saved audience is over the model of its ModelID: ParseSaved pins
// its definition's model to that id, and Compile does so for every
// included audience, so renaming a model and creating another under the
// old name never changes what a saved audience means.
//
// # SQL
//
// Compile returns a Query: the parent model as a FROM item
// (store.Model.Relation, so access-filter views and SQL models work), and
// the predicate members meet, from which Count and Members build complete
// statements and which Where hands to other queries (syncs). Every
// identifier comes from the model (the definition's names only select
// which), quoted by the dialect; every value is a bound ? parameter, in
// both dialects. Related-model conditions are correlated scalar subqueries
// on the foreign key; inclusions are the included predicate over the same
// rows. Compile documents exactly what it binds for each type and dialect.
package audience
