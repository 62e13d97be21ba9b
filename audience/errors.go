package audience

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/signalsmith/agent-server/store"
)

// ErrTooComplex means a definition, with the audiences it includes, would
// compile to more SQL or more bound values than a warehouse query allows.
// Compile's error wraps it and store.ErrInvalid.
var ErrTooComplex = errors.New("audience too complex to compile")

// Problem is one thing wrong with a definition, where it is and what to do
// about it.
type Problem struct {
	// Path is where the problem is, as a JSON path into the definition
	// ("conditions.all[2].value"); empty for the definition as a whole.
	Path string `json:"path"`
	// Message says what is wrong, in terms a caller (or a model) can act on.
	Message string `json:"message"`
}

// String is "path: message", or the message alone when Path is empty.
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError is the error of Parse, Validate and Compile for a
// definition that is malformed or does not fit its model: it lists every
// problem found, each with its path. It wraps store.ErrInvalid, so
// errors.Is(err, store.ErrInvalid) holds; use errors.As to read Problems.
type ValidationError struct {
	Problems []Problem
}

// Error lists the problems, separated by semicolons.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid audience definition: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap returns store.ErrInvalid.
func (e *ValidationError) Unwrap() error { return store.ErrInvalid }

// maxProblems bounds the problems one error lists: past that, a caller
// learns only how many more there were.
const maxProblems = 25

// problems collects problems while a definition is checked.
type problems struct {
	list    []Problem
	dropped int
}

func (ps *problems) add(path, format string, args ...any) {
	p := Problem{Path: path, Message: fmt.Sprintf(format, args...)}
	if slices.Contains(ps.list, p) {
		// The same audience included twice fails twice the same way.
		return
	}
	if len(ps.list) >= maxProblems {
		ps.dropped++
		return
	}
	ps.list = append(ps.list, p)
}

// err returns the problems as a *ValidationError, or nil when there are
// none.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	list := append([]Problem(nil), ps.list...)
	if ps.dropped > 0 {
		list = append(list, Problem{Message: fmt.Sprintf("and %d more problems", ps.dropped)})
	}
	return &ValidationError{Problems: list}
}

// join adds a key to a JSON path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// index adds a list index to a JSON path.
func index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// asValidation returns err's *ValidationError, if it has one.
func asValidation(err error) (*ValidationError, bool) {
	var ve *ValidationError
	ok := errors.As(err, &ve)
	return ve, ok
}

// Suggestions.

// suggest returns the candidate closest to name, or "" when none is close
// enough to be what the caller meant: same letters in another case, a
// small edit distance, or one name containing the other.
func suggest(name string, candidates []string) string {
	if name == "" || utf8.RuneCountInString(name) > MaxNameLength {
		return ""
	}
	lower := strings.ToLower(name)
	for _, c := range candidates {
		if strings.ToLower(c) == lower {
			return c
		}
	}
	limit := 1
	switch n := utf8.RuneCountInString(name); {
	case n > 8:
		limit = 3
	case n > 4:
		limit = 2
	}
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if d := distance(lower, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	if len(lower) >= 3 {
		for _, c := range candidates {
			lc := strings.ToLower(c)
			if strings.Contains(lc, lower) || (len(lc) >= 3 && strings.Contains(lower, lc)) {
				return c
			}
		}
	}
	return ""
}

// distance is the Levenshtein distance between a and b, in runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// unknownName says that name is not one of candidates, with the closest
// candidate or, failing one, the list of candidates: "column "stat" does
// not exist on model customers; did you mean "state"?".
func unknownName(what, name, where string, candidates []string) string {
	msg := fmt.Sprintf("%s %q does not exist", what, name)
	if where != "" {
		msg += " " + where
	}
	if s := suggest(name, candidates); s != "" {
		return msg + fmt.Sprintf("; did you mean %q?", s)
	}
	if len(candidates) == 0 {
		return msg
	}
	const show = 40
	list := candidates
	more := ""
	if len(list) > show {
		list, more = list[:show], fmt.Sprintf(" and %d more", len(candidates)-show)
	}
	return msg + "; expected one of " + strings.Join(list, ", ") + more
}

// quoteList is `"a", "b" or "c"`.
func quoteList[T ~string](items []T) string { return quoteJoin(items, "or") }

// quoteAll is `"a", "b" and "c"`.
func quoteAll[T ~string](items []T) string { return quoteJoin(items, "and") }

func quoteJoin[T ~string](items []T, conj string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = fmt.Sprintf("%q", string(it))
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}
