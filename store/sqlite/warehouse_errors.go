package sqlite

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/signalsmith/agent-server/store"
)

// Warehouse errors in words of our own.
//
// SQLite's messages can quote the data: json_extract('{}', email) fails
// with "bad JSON path: '<the email>'", and a CASE that fails for one
// customer only reads a value out one error at a time. So no message of the
// engine reaches a caller, an audit reason or a log line as it is. A
// statement that fails to compile is described in the vocabulary of
// store.QueryErrorKind, naming only tokens and names that occur in the SQL
// text that was sent (compiling reads the schema, never a row, and the
// check holds even if that changed); a statement that fails while it runs
// gets one fixed message (store.QueryRuntime), whatever SQLite said.

// runtimeMessage is all a caller learns of a statement that failed while
// it ran: SQLite's message names the value it failed on.
const runtimeMessage = "the query failed while it ran: a value could not be handled " +
	"(such as malformed JSON, a bad JSON path, an integer overflow or a value too large)"

// maxNameBytes bounds a token or name quoted from the SQL text in a
// message.
const maxNameBytes = 128

// readError marks an error raised while a statement ran (binding, stepping
// and reading rows) rather than while it was checked. Its message never
// includes the engine's: warehouseQueryError maps it by SQLite's code.
type readError struct{ err error }

func (e *readError) Error() string { return "query: the statement failed while it ran" }
func (e *readError) Unwrap() error { return e.err }

// warehouseQueryError maps a failed query to the warehouse's error kinds:
// store.ErrQueryLimit at the timeout, the context's cause when the caller
// went away, refusals and compile errors as they were made, and a SQLite
// error raised while reading rows by its code only (readFailure).
func warehouseQueryError(qctx context.Context, timeout time.Duration, rc *warehouseConn, err error) error {
	if errors.Is(context.Cause(qctx), errQueryTimeout) {
		return &store.QueryError{Kind: store.QueryTimeout, Msg: fmt.Sprintf("the query ran longer than %s and was cancelled", timeout)}
	}
	if qctx.Err() != nil {
		return fmt.Errorf("query: %w", context.Cause(qctx))
	}
	if errors.Is(err, store.ErrQueryRefused) || errors.Is(err, store.ErrInvalid) {
		return err
	}
	if rc != nil {
		// The driver prepares the statement again: should the schema have
		// changed since checkStatement, the authorizer has the last word.
		if reason := rc.state.reason(); reason != "" {
			return fmt.Errorf("%w: %s", store.ErrQueryRefused, reason)
		}
	}
	var se *sqlite.Error
	var re *readError
	switch {
	case errors.As(err, &se) && errors.As(err, &re):
		return readFailure(se.Code())
	case errors.As(err, &re):
		// database/sql's or the driver's own error (an argument count,
		// say): Go's words, not the engine's.
		return fmt.Errorf("query: %w", re.err)
	}
	// Opening a connection or installing access filters: the warehouse's
	// own fixed statements, which read no rows of the caller's query.
	return fmt.Errorf("query: %w", err)
}

// readFailure maps the SQLite code of a statement that failed while it
// ran. What the caller's SQL can cause is a store.QueryError with a fixed
// message; anything else (I/O, a corrupt file, memory) is an internal error
// that names the code only, and is logged as such.
func readFailure(code int) error {
	switch code & 0xff {
	case sqlite3.SQLITE_ERROR, sqlite3.SQLITE_TOOBIG:
		return &store.QueryError{Kind: store.QueryRuntime, Msg: runtimeMessage}
	case sqlite3.SQLITE_MISMATCH:
		return &store.QueryError{Kind: store.QueryTypeMismatch, Msg: "the query failed while it ran: a value has a type it cannot be used as (datatype mismatch)"}
	case sqlite3.SQLITE_AUTH:
		return &store.QueryError{Kind: store.QueryNotAllowed, Msg: "the statement is not allowed"}
	case sqlite3.SQLITE_READONLY:
		return &store.QueryError{Kind: store.QueryNotAllowed, Msg: "writes are not allowed"}
	}
	return fmt.Errorf("query: the warehouse engine failed while reading rows (SQLite code %d)", code)
}

// compilePattern is one message of SQLite's compiler that compileError
// passes on in words of its own.
type compilePattern struct {
	kind store.QueryErrorKind
	re   *regexp.Regexp
	// named is the message with the name the pattern captures, used only
	// when the name occurs in the SQL text; bare is the message without
	// it. A pattern without named captures nothing but fixed words and
	// numbers, and the engine's message is passed on as it is.
	named, bare string
}

// compilePatterns are the compiler's messages the vocabulary covers, most
// specific first. sqlite3_errmsg after a failed prepare has no prefix. A
// captured name may span lines ((?s)): inSQL refuses to quote it, but the
// kind is still told.
var compilePatterns = []compilePattern{
	{store.QuerySyntax, regexp.MustCompile(`(?s)^near "(.*)": syntax error$`), `syntax error near "%s"`, "syntax error"},
	{store.QuerySyntax, regexp.MustCompile(`(?s)^unrecognized token: "(.*)"$`), `syntax error: unrecognized token "%s"`, "syntax error: unrecognized token"},
	{store.QuerySyntax, regexp.MustCompile(`^incomplete input$`), "syntax error: the SQL ends too early (incomplete input)", ""},
	{store.QueryUnknownTable, regexp.MustCompile(`(?s)^no such table: (.+)$`), "no such table: %s", "no such table"},
	{store.QueryUnknownColumn, regexp.MustCompile(`(?s)^no such column: "(.+)" - should this be a string literal in single-quotes\?$`),
		`no such column: "%s" (double quotes name a column; write a string in single quotes)`,
		"no such column (double quotes name a column; write a string in single quotes)"},
	{store.QueryUnknownColumn, regexp.MustCompile(`(?s)^no such column: (.+)$`), "no such column: %s", "no such column"},
	{store.QueryUnknownColumn, regexp.MustCompile(`(?s)^ambiguous column name: (.+)$`), "ambiguous column name: %s (qualify it with its table)", "ambiguous column name"},
	{store.QueryUnknownFunction, regexp.MustCompile(`(?s)^no such function: (.+)$`), "no such function: %s", "no such function"},
	{store.QueryArguments, regexp.MustCompile(`(?s)^wrong number of arguments to function (.+)\(\)$`), "wrong number of arguments to function %s()", "wrong number of arguments to a function"},
	{store.QueryCompile, regexp.MustCompile(`(?s)^misuse of aggregate(?: function|:) (.+)\(\)$`), "misuse of aggregate function %s()", "misuse of an aggregate function"},
	{store.QueryCompile, regexp.MustCompile(`(?s)^misuse of window function (.+)\(\)$`), "misuse of window function %s()", "misuse of a window function"},
	{store.QueryCompile, regexp.MustCompile(`^sub-select returns \d+ columns - expected \d+$`), "", ""},
	{store.QueryCompile, regexp.MustCompile(`^\d+(?:st|nd|rd|th) (?:ORDER|GROUP) BY term out of range - should be between \d+ and \d+$`), "", ""},
	{store.QueryCompile, regexp.MustCompile(`^SELECTs to the left and right of (?:UNION|UNION ALL|INTERSECT|EXCEPT) do not have the same number of result columns$`), "", ""},
	{store.QueryCompile, regexp.MustCompile(`^aggregate functions are not allowed in the GROUP BY clause$`), "", ""},
	{store.QueryCompile, regexp.MustCompile(`^HAVING clause on a non-aggregate query$`), "", ""},
}

// compileError maps a failed sqlite3_prepare_v2 of query, with SQLite's
// code rc and message msg, to a store.QueryError (store.ErrInvalid) in the
// vocabulary of compilePatterns; a message it does not know becomes one
// fixed message. A code the caller's SQL cannot cause is an internal error
// naming the code only.
func compileError(query, msg string, rc int32) error {
	switch rc & 0xff {
	case sqlite3.SQLITE_ERROR:
	case sqlite3.SQLITE_TOOBIG:
		return &store.QueryError{Kind: store.QueryCompile, Msg: "the SQL, or a value written in it, is too long"}
	case sqlite3.SQLITE_MISMATCH:
		return &store.QueryError{Kind: store.QueryTypeMismatch, Msg: "a value in the SQL has a type it cannot be used as (datatype mismatch)"}
	default:
		return fmt.Errorf("query: prepare failed (SQLite code %d)", rc)
	}
	for _, p := range compilePatterns {
		m := p.re.FindStringSubmatch(msg)
		switch {
		case m == nil:
			continue
		case len(m) == 1 && p.named != "":
			return &store.QueryError{Kind: p.kind, Msg: p.named}
		case len(m) == 1:
			return &store.QueryError{Kind: p.kind, Msg: msg}
		case inSQL(query, m[1]):
			return &store.QueryError{Kind: p.kind, Msg: fmt.Sprintf(p.named, m[1])}
		default:
			return &store.QueryError{Kind: p.kind, Msg: p.bare}
		}
	}
	return &store.QueryError{Kind: store.QueryCompile,
		Msg: "the SQL does not compile; check its clauses, subqueries and aggregates against the tables' columns (describe_table)"}
}

// inSQL reports whether name, a token or name SQLite quoted in a message,
// occurs in query: as written, or, for a qualified name the engine
// printed as schema.table or table.column, every part of it. Case is
// ignored, as SQLite ignores it in names. A name too long, not UTF-8 or
// with control characters is never quoted.
func inSQL(query, name string) bool {
	if name == "" || len(name) > maxNameBytes || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return false
	}
	q := strings.ToLower(query)
	if strings.Contains(q, strings.ToLower(name)) {
		return true
	}
	for part := range strings.SplitSeq(name, ".") {
		if part == "" || !strings.Contains(q, strings.ToLower(part)) {
			return false
		}
	}
	return true
}
