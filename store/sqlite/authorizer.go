package sqlite

import (
	"fmt"
	"strings"
	"sync"

	"modernc.org/sqlite"

	"github.com/signalsmith/agent-server/store"
)

// authState records why the authorizer denied the statement being
// compiled, so the error can say what was refused.
type authState struct {
	// modules are the connection's virtual table modules, lowercased:
	// names a query may not read without a schema, since eponymous ones
	// such as sqlite_dbpage read any database.
	modules map[string]bool

	mu   sync.Mutex
	last string
	// setup is true while the warehouse runs its own fixed statements
	// that install or remove access filters (applyFilters): everything is
	// allowed then, and only then.
	setup bool
	// filter holds the access filters installed for the current call.
	filter *connFilters
	// lineage, while set, records the reads of the statement being
	// compiled (lineage.go).
	lineage *lineageRecorder
}

func (s *authState) setSetup(on bool) {
	s.mu.Lock()
	s.setup = on
	s.mu.Unlock()
}

func (s *authState) setFilters(f *connFilters) {
	s.mu.Lock()
	s.filter = f
	s.mu.Unlock()
}

// filters returns the installed access filters, nil when there are none.
func (s *authState) filters() *connFilters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.filter
}

func (s *authState) inSetup() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setup
}

// special reports whether name is an internal table or a virtual table
// module rather than a table or CTE of the query's own.
func (s *authState) special(name string) bool {
	n := strings.ToLower(name)
	if n == "json_each" || n == "json_tree" {
		return false
	}
	return s.modules[n] || n == "dbstat" || strings.HasPrefix(n, "sqlite_") || strings.HasPrefix(n, "pragma_")
}

func (s *authState) deny(reason string) sqlite.AuthorizerReturnCode {
	s.mu.Lock()
	s.last = reason
	s.mu.Unlock()
	return sqlite.AuthorizerDeny
}

func (s *authState) reset() {
	s.mu.Lock()
	s.last = ""
	s.mu.Unlock()
}

func (s *authState) reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// queryPolicy is the authorizer of callers' queries, an allow-list: SELECT,
// recursive CTEs, reads of tables of the analytics schema (not its sqlite_
// tables), the JSON table-valued functions, and the functions in
// allowedFunctions. With access filters installed, reads of a filtered
// table go through its filter view only (connFilters.filterRead).
// Everything else is denied, with a reason. While the warehouse installs or
// removes filters (setup), its own fixed statements are allowed.
func queryPolicy(s *authState) sqlite.AuthorizerFn {
	return func(action sqlite.AuthorizerActionCode, arg1, arg2, dbName, view string) sqlite.AuthorizerReturnCode {
		if s.inSetup() {
			return sqlite.AuthorizerOK
		}
		rec := s.recorder()
		switch action {
		case sqlite.AuthSelect, sqlite.AuthRecursive:
			if rec != nil && action == sqlite.AuthSelect {
				rec.noteSelect()
			}
			return sqlite.AuthorizerOK
		case sqlite.AuthRead:
			if rec != nil {
				rec.noteRead(dbName, arg1, arg2)
			}
			if f := s.filters(); f != nil {
				if ok, decided, reason := f.filterRead(arg1, arg2, dbName, view); decided {
					if ok {
						return sqlite.AuthorizerOK
					}
					return s.deny(reason)
				}
			}
			if analyticsReadable(dbName, arg1) {
				return sqlite.AuthorizerOK
			}
			if dbName == "" && arg2 == "" && !s.special(arg1) {
				// A table or CTE read for its rows alone, named without a
				// schema: checkProgram sees which database it really is.
				return sqlite.AuthorizerOK
			}
			return s.deny(fmt.Sprintf("table %s may not be read", qualified(dbName, arg1)))
		case sqlite.AuthFunction:
			if allowedFunctions[strings.ToLower(arg2)] {
				return sqlite.AuthorizerOK
			}
			return s.deny(fmt.Sprintf("function %s is not allowed", arg2))
		}
		return s.deny(deniedReason(action))
	}
}

// qualified is schema.table, or table when the schema is unknown.
func qualified(schema, table string) string {
	if schema == "" {
		return table
	}
	return schema + "." + table
}

// analyticsReadable reports whether callers may read table in schema.
func analyticsReadable(schema, table string) bool {
	switch {
	case schema == store.SchemaAnalytics:
		t := strings.ToLower(table)
		return !strings.HasPrefix(t, "sqlite_") && t != "dbstat"
	case schema == "main":
		// json_each and json_tree are eponymous virtual tables: they read
		// their arguments, not a database.
		t := strings.ToLower(table)
		return t == "json_each" || t == "json_tree"
	}
	return false
}

// catalogPolicy is the authorizer of the catalog pool, which runs only the
// fixed statements of Tables and Describe: it may also read the analytics
// schema's sqlite_ tables and its table_xinfo pragma.
func catalogPolicy(s *authState) sqlite.AuthorizerFn {
	return func(action sqlite.AuthorizerActionCode, arg1, arg2, dbName, _ string) sqlite.AuthorizerReturnCode {
		switch action {
		case sqlite.AuthSelect:
			return sqlite.AuthorizerOK
		case sqlite.AuthRead:
			if dbName == store.SchemaAnalytics || (dbName == "main" && arg1 == "pragma_table_xinfo") {
				return sqlite.AuthorizerOK
			}
			return s.deny(fmt.Sprintf("table %s.%s may not be read", dbName, arg1))
		case sqlite.AuthPragma:
			if arg1 == "table_xinfo" && dbName == store.SchemaAnalytics {
				return sqlite.AuthorizerOK
			}
		case sqlite.AuthFunction:
			if allowedFunctions[strings.ToLower(arg2)] {
				return sqlite.AuthorizerOK
			}
		}
		return s.deny(deniedReason(action))
	}
}

// deniedReason says, for an error message, what kind of statement an
// action belongs to.
func deniedReason(action sqlite.AuthorizerActionCode) string {
	switch action {
	case sqlite.AuthInsert, sqlite.AuthUpdate, sqlite.AuthDelete,
		sqlite.AuthCreateIndex, sqlite.AuthCreateTable, sqlite.AuthCreateTempIndex,
		sqlite.AuthCreateTempTable, sqlite.AuthCreateTempTrigger, sqlite.AuthCreateTempView,
		sqlite.AuthCreateTrigger, sqlite.AuthCreateView, sqlite.AuthCreateVTable,
		sqlite.AuthDropIndex, sqlite.AuthDropTable, sqlite.AuthDropTempIndex,
		sqlite.AuthDropTempTable, sqlite.AuthDropTempTrigger, sqlite.AuthDropTempView,
		sqlite.AuthDropTrigger, sqlite.AuthDropView, sqlite.AuthDropVTable,
		sqlite.AuthAlterTable, sqlite.AuthReindex, sqlite.AuthAnalyze:
		return "writes are not allowed"
	case sqlite.AuthAttach, sqlite.AuthDetach:
		// VACUUM attaches its target database, so it lands here too.
		return "attaching or detaching a database is not allowed"
	case sqlite.AuthPragma:
		return "PRAGMA statements are not allowed"
	case sqlite.AuthTransaction, sqlite.AuthSavepoint:
		return "transaction control is not allowed"
	}
	return fmt.Sprintf("operation %d is not allowed", action)
}

// allowedFunctions are the SQL functions a query may call: SQLite's core
// scalar, date, math, JSON, aggregate and window functions. Left out on
// purpose: load_extension, anything that reveals or changes the connection
// (changes, last_insert_rowid, sqlite_version, sqlite_compileoption_*,
// sqlite_offset), and randomblob and zeroblob, which only make big values.
var allowedFunctions = func() map[string]bool {
	names := []string{
		// scalar
		"abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex",
		"if", "iif", "ifnull", "instr", "length", "like", "likelihood", "likely",
		"lower", "ltrim", "max", "min", "nullif", "octet_length", "printf", "quote",
		"random", "replace", "round", "rtrim", "sign", "soundex", "substr",
		"substring", "trim", "typeof", "unhex", "unicode", "unistr", "unlikely", "upper",
		// date and time
		"date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
		"current_date", "current_time", "current_timestamp",
		// math
		"acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling",
		"cos", "cosh", "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod",
		"pi", "pow", "power", "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
		// JSON
		"json", "json_array", "json_array_length", "json_error_position", "json_extract",
		"json_insert", "json_object", "json_patch", "json_pretty", "json_quote",
		"json_remove", "json_replace", "json_set", "json_type", "json_valid", "->", "->>",
		"json_each", "json_tree",
		// aggregate
		"avg", "count", "group_concat", "string_agg", "sum", "total",
		"json_group_array", "json_group_object",
		// window
		"row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile",
		"lag", "lead", "first_value", "last_value", "nth_value",
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}()
