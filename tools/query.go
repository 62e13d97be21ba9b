package tools

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// queryError turns a warehouse error into one the model can act on: a
// query over its time limit, one that failed while it ran, one the engine
// refused, or SQL the engine cannot compile. what names the query ("the
// model's SQL", "the preview"). Any other error is returned as it is
// (internal).
func queryError(err error, limits store.QueryLimits, what string) error {
	var qe *store.QueryError
	switch {
	case errors.Is(err, store.ErrQueryLimit):
		limit := "its time limit"
		if limits.Timeout > 0 {
			limit = limits.Timeout.String()
		}
		return Errorf("the query took longer than %s and was cancelled; narrow it (fewer rows, a simpler model SQL, fewer joins) and try again", limit)
	case errors.As(err, &qe) && qe.Kind == store.QueryRuntime:
		// The warehouse's message is fixed: the engine's can quote the
		// value it failed on.
		return Errorf("%s: %s. The warehouse's own message is not shown, as it can contain customer data: "+
			"change the SQL so that every row's values can be computed (for example check JSON with json_valid first) and try again", what, qe.Msg)
	case errors.Is(err, store.ErrQueryRefused):
		return Errorf("the warehouse refused %s: %s", what, queryDetail(err))
	case errors.Is(err, store.ErrInvalid):
		return Errorf("%s is not valid SQL for the warehouse: %s", what, queryDetail(err))
	}
	return err
}

// queryDetail is a warehouse error's message without the error kinds,
// which queryError already put in words. The warehouse's messages name
// tables, columns, functions and SQL syntax from the SQL's text, never data
// (store.QueryError); anything that looks like an API key is cut to its
// prefix all the same.
func queryDetail(err error) string {
	msg := err.Error()
	for _, s := range []string{store.ErrQueryRefused.Error() + ": ", "query: "} {
		msg = strings.ReplaceAll(msg, s, "")
	}
	msg = strings.ReplaceAll(msg, ": "+store.ErrInvalid.Error(), "")
	return guardrails.RedactString(msg)
}

// Bounds of a preview answer: the rows it carries encode to at most
// maxPreviewBytes of JSON, and no string value is longer than
// maxPreviewValue bytes. A model's SQL can make values and rows as large
// as it likes; the answer goes to a model's context, so it stays small.
const (
	maxPreviewBytes = 1 << 20
	maxPreviewValue = 4 << 10
)

// valueCut ends a string value that was cut.
const valueCut = "…"

// boundPreview cuts string values longer than maxPreviewValue and keeps
// rows, in order, while their JSON encoding fits in maxPreviewBytes. It
// returns the rows kept, whether rows were dropped, and how many values
// were cut.
func boundPreview(rows []map[string]any) ([]map[string]any, bool, int, error) {
	cut := 0
	size := len("[]")
	for i, row := range rows {
		for col, v := range row {
			if s, ok := v.(string); ok && len(s) > maxPreviewValue {
				row[col] = strings.ToValidUTF8(s[:maxPreviewValue], "") + valueCut
				cut++
			}
		}
		b, err := json.Marshal(row)
		if err != nil {
			return nil, false, 0, fmt.Errorf("encode preview row: %w", err)
		}
		if size += len(b) + 1; size > maxPreviewBytes {
			return rows[:i], true, cut, nil
		}
	}
	return rows, false, cut, nil
}

// cutText says how a preview was cut to stay within its bounds, for the
// text of its answer; empty when nothing was.
func cutText(dropped bool, valuesCut int) string {
	var parts []string
	if dropped {
		parts = append(parts, fmt.Sprintf("rows past %d KiB were cut", maxPreviewBytes>>10))
	}
	if valuesCut > 0 {
		parts = append(parts, fmt.Sprintf("%d values longer than %d bytes were cut", valuesCut, maxPreviewValue))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, " and ") + " (ask for fewer rows or select fewer or shorter columns)"
}
