package store

// QueryErrorKind names what went wrong with a warehouse query, in a fixed
// vocabulary that never needs the engine's own message.
type QueryErrorKind string

// Kinds of QueryError. A compile-time kind may name a token, table, column
// or function, and only one that occurs in the SQL text the caller sent;
// QueryRuntime never carries anything of the engine's message.
const (
	// QuerySyntax: the SQL does not parse.
	QuerySyntax QueryErrorKind = "syntax"
	// QueryUnknownTable: the SQL names a table that does not exist.
	QueryUnknownTable QueryErrorKind = "unknown_table"
	// QueryUnknownColumn: the SQL names a column that does not exist, or
	// one that is ambiguous.
	QueryUnknownColumn QueryErrorKind = "unknown_column"
	// QueryUnknownFunction: the SQL calls a function that does not exist.
	QueryUnknownFunction QueryErrorKind = "unknown_function"
	// QueryArguments: a function is called with the wrong number of
	// arguments, or the statement with the wrong number of parameters.
	QueryArguments QueryErrorKind = "arguments"
	// QueryTypeMismatch: a value has a type the statement cannot use.
	QueryTypeMismatch QueryErrorKind = "type_mismatch"
	// QueryCompile: the SQL does not compile for another reason.
	QueryCompile QueryErrorKind = "compile"
	// QueryNotAllowed: the engine refused the statement (ErrQueryRefused).
	QueryNotAllowed QueryErrorKind = "not_allowed"
	// QueryTimeout: the query ran past its timeout and was cancelled
	// (ErrQueryLimit).
	QueryTimeout QueryErrorKind = "timeout"
	// QueryRuntime: the statement compiled but failed while it ran, on a
	// value it could not handle (malformed JSON, a bad JSON path, an
	// integer overflow, a value too large).
	QueryRuntime QueryErrorKind = "runtime"
)

// QueryError is a warehouse query error whose message is safe to show the
// caller, to record as an audit reason and to log: a warehouse builds Msg
// from the vocabulary of its kind, never from the engine's message, which
// can quote a value from the data (SQLite's "bad JSON path: '<the
// value>'"). errors.Is matches it against ErrQueryLimit (QueryTimeout),
// ErrQueryRefused (QueryNotAllowed) and ErrInvalid (every other kind).
type QueryError struct {
	Kind QueryErrorKind
	// Msg says what went wrong, without the error's kind spelt out as a
	// Go error: "no such column: nope".
	Msg string
}

// Error returns Msg.
func (e *QueryError) Error() string { return e.Msg }

// Is reports whether target is the warehouse error value of e's kind.
func (e *QueryError) Is(target error) bool {
	switch target {
	case ErrQueryLimit:
		return e.Kind == QueryTimeout
	case ErrQueryRefused:
		return e.Kind == QueryNotAllowed
	case ErrInvalid:
		return e.Kind != QueryTimeout && e.Kind != QueryNotAllowed
	}
	return false
}
