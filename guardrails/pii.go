package guardrails

import "github.com/signalsmith/agent-server/store"

// Masked is what a preview shows for a redacted value.
const Masked = "***"

// ValidPII reports whether level is one of the four PII levels of DESIGN.md
// section 3. The empty string is not a level: a column must say what it is.
func ValidPII(level string) bool {
	switch level {
	case store.PIINone, store.PIIRedacted, store.PIISyncOnly, store.PIIBlocked:
		return true
	}
	return false
}

// previewable reports whether a column at level may appear in a preview.
// Anything but none and redacted stays out, including an empty or unknown
// level: an unlabelled column is treated as blocked (fail closed), so a
// forgotten label hides data instead of leaking it.
func previewable(level string) bool {
	return level == store.PIINone || level == store.PIIRedacted
}

// PreviewColumns returns, in order, the columns a preview may show: those at
// level none or redacted. sync_only and blocked columns are left out, and so
// is a column with an empty or unknown level. The preview query should
// select only these columns, so hidden values never leave the warehouse.
func PreviewColumns(cols []store.Column) []store.Column {
	out := make([]store.Column, 0, len(cols))
	for _, c := range cols {
		if previewable(c.PII) {
			out = append(out, c)
		}
	}
	return out
}

// MaskPreview returns a copy of row, whose values align with cols (the
// result of PreviewColumns), with every redacted value replaced by Masked.
// A NULL (nil) stays nil whatever the level: it reveals only that a value is
// missing, which is not PII and helps a user judge the data. Any other
// value of a redacted column, typed nils and empty strings included, is
// masked. A value whose column is not previewable, or that has no column,
// becomes nil, so a caller that passes the wrong columns leaks nothing.
func MaskPreview(cols []store.Column, row []any) []any {
	out := make([]any, len(row))
	for i, v := range row {
		switch {
		case i >= len(cols) || !previewable(cols[i].PII):
			out[i] = nil
		case cols[i].PII == store.PIIRedacted && v != nil:
			out[i] = Masked
		default:
			out[i] = v
		}
	}
	return out
}
