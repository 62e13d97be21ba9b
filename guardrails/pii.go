package guardrails

import "github.com/signalsmith/agent-server/store"

// Masked is what a preview shows for a redacted value.
const Masked = "***"

// ValidPII reports whether level is one of the four PII levels.
func ValidPII(level string) bool {
	switch level {
	case store.PIINone, store.PIIRedacted, store.PIISyncOnly, store.PIIBlocked:
		return true
	}
	return false
}

// PreviewColumns returns the columns a preview may show, in order: those at
// level none or redacted. sync_only and blocked columns are left out, and so
// is a column with an empty or unknown level (fail closed).
func PreviewColumns(cols []store.Column) []store.Column {
	out := make([]store.Column, 0, len(cols))
	for _, c := range cols {
		if c.PII == store.PIINone || c.PII == store.PIIRedacted {
			out = append(out, c)
		}
	}
	return out
}

// MaskPreview returns row with redacted values replaced by Masked. row's
// values align with cols, which must come from PreviewColumns. A NULL stays
// nil: it reveals only that a value is missing, not what it is.
func MaskPreview(cols []store.Column, row []any) []any {
	out := make([]any, len(row))
	for i, v := range row {
		switch {
		case i >= len(cols) || cols[i].PII != store.PIINone && cols[i].PII != store.PIIRedacted:
			// Not a preview column: never pass a value through.
			out[i] = nil
		case cols[i].PII == store.PIIRedacted && v != nil:
			out[i] = Masked
		default:
			out[i] = v
		}
	}
	return out
}
