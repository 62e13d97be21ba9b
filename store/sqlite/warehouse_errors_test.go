package sqlite

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/signalsmith/agent-server/store"
)

func TestCompileError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query, msg string
		kind             store.QueryErrorKind
		want             string // the whole message
	}{
		{"syntax error near a token of the text", "SELEC 1", `near "SELEC": syntax error`,
			store.QuerySyntax, `syntax error near "SELEC"`},
		{"syntax error near a token not in the text", "SELECT 1 FROM", `near "alice@example.com": syntax error`,
			store.QuerySyntax, "syntax error"},
		{"unrecognized token of the text", "SELECT 'abc", `unrecognized token: "'abc"`,
			store.QuerySyntax, `syntax error: unrecognized token "'abc"`},
		{"unrecognized token not in the text", "SELECT 1", `unrecognized token: "'secret"`,
			store.QuerySyntax, "syntax error: unrecognized token"},
		{"incomplete input", "SELECT (1", "incomplete input",
			store.QuerySyntax, "syntax error: the SQL ends too early (incomplete input)"},
		{"unknown column named in the text", "SELECT nope FROM customers", "no such column: nope",
			store.QueryUnknownColumn, "no such column: nope"},
		{"unknown column in another case", "SELECT NoPe FROM customers", "no such column: NoPe",
			store.QueryUnknownColumn, "no such column: NoPe"},
		{"unknown qualified column, quoted parts", `SELECT "o"."nope" FROM orders o`, "no such column: o.nope",
			store.QueryUnknownColumn, "no such column: o.nope"},
		{"unknown column not in the text", "SELECT x FROM customers", "no such column: bob@example.org",
			store.QueryUnknownColumn, "no such column"},
		{"double-quoted string", `SELECT 1 WHERE state = "CA"`, `no such column: "CA" - should this be a string literal in single-quotes?`,
			store.QueryUnknownColumn, `no such column: "CA" (double quotes name a column; write a string in single quotes)`},
		{"ambiguous column", "SELECT email FROM a, b", "ambiguous column name: email",
			store.QueryUnknownColumn, "ambiguous column name: email (qualify it with its table)"},
		{"unknown table named in the text", "SELECT * FROM main.customers", "no such table: main.customers",
			store.QueryUnknownTable, "no such table: main.customers"},
		{"unknown table not in the text", "SELECT * FROM t", "no such table: secret_table",
			store.QueryUnknownTable, "no such table"},
		{"unknown function", "SELECT readfile('x')", "no such function: readfile",
			store.QueryUnknownFunction, "no such function: readfile"},
		{"wrong number of arguments", "SELECT abs(1, 2)", "wrong number of arguments to function abs()",
			store.QueryArguments, "wrong number of arguments to function abs()"},
		{"wrong number of arguments, name not in the text", "SELECT 1", "wrong number of arguments to function secret()",
			store.QueryArguments, "wrong number of arguments to a function"},
		{"misuse of an aggregate", "SELECT 1 FROM c WHERE count(*) > 1", "misuse of aggregate: count()",
			store.QueryCompile, "misuse of aggregate function count()"},
		{"a message of fixed words and numbers", "SELECT (SELECT 1, 2)", "sub-select returns 2 columns - expected 1",
			store.QueryCompile, "sub-select returns 2 columns - expected 1"},
		{"ORDER BY term out of range", "SELECT 1 ORDER BY 2", "1st ORDER BY term out of range - should be between 1 and 1",
			store.QueryCompile, "1st ORDER BY term out of range - should be between 1 and 1"},
		{"a name too long to quote", "SELECT " + strings.Repeat("x", 200), "no such column: " + strings.Repeat("x", 200),
			store.QueryUnknownColumn, "no such column"},
		{"a name with a control character", "SELECT \"a\nb\"", "no such column: a\nb",
			store.QueryUnknownColumn, "no such column"},
		{"an unknown message", "SELECT 1", "something about 'carol@example.com'",
			store.QueryCompile, "the SQL does not compile; check its clauses, subqueries and aggregates against the tables' columns (describe_table)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := compileError(tt.query, tt.msg, sqlite3.SQLITE_ERROR)
			var qe *store.QueryError
			if !errors.As(err, &qe) || qe.Kind != tt.kind || err.Error() != tt.want {
				t.Fatalf("compileError(%q, %q) = %#v, want kind %s and %q", tt.query, tt.msg, err, tt.kind, tt.want)
			}
			if !errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrQueryRefused) || errors.Is(err, store.ErrQueryLimit) {
				t.Errorf("a compile error of kind %s is not only store.ErrInvalid", qe.Kind)
			}
		})
	}

	t.Run("codes other than SQLITE_ERROR", func(t *testing.T) {
		t.Parallel()
		for _, rc := range []int32{sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_BUSY} {
			err := compileError("SELECT 1", "disk says 'dave@example.net'", rc)
			var qe *store.QueryError
			if errors.As(err, &qe) || errors.Is(err, store.ErrInvalid) || strings.Contains(err.Error(), "dave") {
				t.Errorf("code %d: %v, want an internal error naming the code only", rc, err)
			}
		}
		if err := compileError("SELECT 1", "string or blob too big", sqlite3.SQLITE_TOOBIG); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("SQLITE_TOOBIG: %v, want store.ErrInvalid", err)
		}
		var qe *store.QueryError
		if err := compileError("SELECT 1", "datatype mismatch", sqlite3.SQLITE_MISMATCH); !errors.As(err, &qe) || qe.Kind != store.QueryTypeMismatch {
			t.Errorf("SQLITE_MISMATCH: %v, want a type mismatch", err)
		}
	})
}

func TestReadFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code int
		kind store.QueryErrorKind // empty: internal
		is   error
	}{
		{sqlite3.SQLITE_ERROR, store.QueryRuntime, store.ErrInvalid},
		{sqlite3.SQLITE_TOOBIG, store.QueryRuntime, store.ErrInvalid},
		{sqlite3.SQLITE_MISMATCH, store.QueryTypeMismatch, store.ErrInvalid},
		{sqlite3.SQLITE_AUTH, store.QueryNotAllowed, store.ErrQueryRefused},
		{sqlite3.SQLITE_READONLY, store.QueryNotAllowed, store.ErrQueryRefused},
		{sqlite3.SQLITE_IOERR | 1<<8, "", nil},
		{sqlite3.SQLITE_CORRUPT, "", nil},
		{sqlite3.SQLITE_NOMEM, "", nil},
	}
	for _, tt := range tests {
		err := readFailure(tt.code)
		var qe *store.QueryError
		switch {
		case tt.kind == "":
			if errors.As(err, &qe) || !strings.Contains(err.Error(), "SQLite code") {
				t.Errorf("code %d: %v, want an internal error with the code", tt.code, err)
			}
		case !errors.As(err, &qe) || qe.Kind != tt.kind || !errors.Is(err, tt.is):
			t.Errorf("code %d: %#v, want kind %s matching %v", tt.code, err, tt.kind, tt.is)
		}
	}
}

// TestWarehouseErrorsDropValues runs SQL that fails on a customer's value
// through the real warehouse: the error must not quote it.
func TestWarehouseErrorsDropValues(t *testing.T) {
	t.Parallel()
	w, _ := openTestWarehouse(t, WarehouseOptions{})
	ctx := context.Background()
	res, err := w.Query(ctx, store.QueryLimits{}, `SELECT customer_id, email, notes FROM analytics.customers
		WHERE email IS NOT NULL AND notes IS NOT NULL ORDER BY customer_id LIMIT 1`)
	if err != nil || len(res.Rows) != 1 {
		t.Fatalf("a customer with email and notes: %v, %v", res.Rows, err)
	}
	id, email, notes := res.Rows[0][0].(int64), res.Rows[0][1].(string), res.Rows[0][2].(string)

	runtime := []struct{ name, query string }{
		{"json_extract with email as the path", "SELECT json_extract('{}', email) FROM analytics.customers"},
		{"json_extract with notes as the path", "SELECT json_extract('{}', notes) FROM analytics.customers"},
		{"for one customer only", "SELECT CASE WHEN customer_id = " + strconv.FormatInt(id, 10) + " THEN json_extract('{}', email) END FROM analytics.customers"},
		{"a CAST into a JSON path", "SELECT json_set('{}', CAST(notes AS TEXT), 1) FROM analytics.customers"},
		{"malformed JSON", "SELECT json(notes) FROM analytics.customers WHERE notes IS NOT NULL"},
		{"integer overflow", "SELECT abs(-9223372036854775807 - 1 + length(email) - length(email)) FROM analytics.customers WHERE email IS NOT NULL"},
	}
	for _, tt := range runtime {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, qerr := w.Query(ctx, store.QueryLimits{}, tt.query)
			_, cerr := w.CheckSQL(ctx, store.QueryLimits{}, tt.query)
			for what, err := range map[string]error{"Query": qerr, "CheckSQL": cerr} {
				var qe *store.QueryError
				if !errors.As(err, &qe) || qe.Kind != store.QueryRuntime || err.Error() == "" || !errors.Is(err, store.ErrInvalid) {
					t.Errorf("%s: %v, want a runtime QueryError", what, err)
					continue
				}
				for _, v := range []string{email, notes} {
					if strings.Contains(err.Error(), v) {
						t.Errorf("%s: the error quotes the customer's %q: %v", what, v, err)
					}
				}
			}
			if !errors.Is(cerr, store.ErrQueryRefused) {
				t.Errorf("CheckSQL: %v, want store.ErrQueryRefused as well (not a model)", cerr)
			}
		})
	}

	compile := []struct {
		name, query string
		kind        store.QueryErrorKind
		want        string
	}{
		{"syntax error", "SELEC 1", store.QuerySyntax, `syntax error near "SELEC"`},
		{"unknown column", "SELECT nope FROM analytics.customers", store.QueryUnknownColumn, "no such column: nope"},
		{"unknown table", "SELECT * FROM analytics.nope", store.QueryUnknownTable, "no such table: analytics.nope"},
		{"unknown function", "SELECT nope(1)", store.QueryUnknownFunction, "no such function: nope"},
		{"wrong number of arguments", "SELECT abs(1, 2)", store.QueryArguments, "wrong number of arguments to function abs()"},
	}
	for _, tt := range compile {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := w.Query(ctx, store.QueryLimits{}, tt.query)
			var qe *store.QueryError
			if !errors.As(err, &qe) || qe.Kind != tt.kind || err.Error() != tt.want {
				t.Errorf("%q: %#v, want kind %s and %q", tt.query, err, tt.kind, tt.want)
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		_, err := w.Query(ctx, store.QueryLimits{Timeout: 100 * time.Millisecond},
			"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n")
		var qe *store.QueryError
		if !errors.As(err, &qe) || qe.Kind != store.QueryTimeout || !errors.Is(err, store.ErrQueryLimit) || errors.Is(err, store.ErrInvalid) {
			t.Errorf("err = %#v, want a timeout QueryError matching store.ErrQueryLimit only", err)
		}
	})
}
