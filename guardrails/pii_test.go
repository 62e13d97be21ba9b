package guardrails

import (
	"reflect"
	"slices"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

func TestPIILevels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		level   string
		valid   bool
		shown   bool // in PreviewColumns
		value   any  // a non-NULL value of the column...
		preview any  // ...as MaskPreview shows it
	}{
		{level: store.PIINone, valid: true, shown: true, value: "Berlin", preview: "Berlin"},
		{level: store.PIIRedacted, valid: true, shown: true, value: "a@example.com", preview: Masked},
		{level: store.PIISyncOnly, valid: true, shown: false, value: "1990-01-01", preview: nil},
		{level: store.PIIBlocked, valid: true, shown: false, value: "call me", preview: nil},
		{level: "", valid: false, shown: false, value: "unlabelled", preview: nil},
		{level: "reddacted", valid: false, shown: false, value: "typo", preview: nil},
		{level: "REDACTED", valid: false, shown: false, value: "case", preview: nil},
		{level: "public", valid: false, shown: false, value: "made up", preview: nil},
	}
	for _, tt := range tests {
		t.Run("level="+tt.level, func(t *testing.T) {
			t.Parallel()
			if got := ValidPII(tt.level); got != tt.valid {
				t.Errorf("ValidPII(%q) = %v, want %v", tt.level, got, tt.valid)
			}
			col := store.Column{Name: "c", PII: tt.level}
			shown := PreviewColumns([]store.Column{col})
			if (len(shown) == 1) != tt.shown {
				t.Fatalf("PreviewColumns shows %v, want shown %v", shown, tt.shown)
			}
			// Masking is applied to the column as given, even one that
			// PreviewColumns would have left out.
			if got := MaskPreview([]store.Column{col}, []any{tt.value}); !reflect.DeepEqual(got, []any{tt.preview}) {
				t.Errorf("MaskPreview(%v) = %#v, want %#v", tt.value, got, []any{tt.preview})
			}
			// NULL stays NULL at every level: it says only that a value is missing.
			if got := MaskPreview([]store.Column{col}, []any{nil}); !reflect.DeepEqual(got, []any{nil}) {
				t.Errorf("MaskPreview(NULL) = %#v, want [nil]", got)
			}
		})
	}
}

func TestPreviewMasking(t *testing.T) {
	t.Parallel()
	cols := []store.Column{
		{Name: "id", PII: store.PIINone},
		{Name: "email", PII: store.PIIRedacted},
		{Name: "birth_date", PII: store.PIISyncOnly},
		{Name: "notes", PII: store.PIIBlocked},
		{Name: "unlabelled", PII: ""},
		{Name: "typo", PII: "reddacted"},
		{Name: "phone", PII: store.PIIRedacted},
		{Name: "city", PII: store.PIINone},
	}
	shown := PreviewColumns(cols)
	var names []string
	for _, c := range shown {
		names = append(names, c.Name)
	}
	if want := []string{"id", "email", "phone", "city"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("PreviewColumns = %v, want %v", names, want)
	}

	tests := []struct {
		name string
		row  []any
		want []any
	}{
		{"values", []any{int64(7), "a@example.com", "+1 555 0100", "Lyon"}, []any{int64(7), Masked, Masked, "Lyon"}},
		{"nulls", []any{int64(8), nil, nil, nil}, []any{int64(8), nil, nil, nil}},
		{"non-string redacted values", []any{int64(9), []byte("a@example.com"), int64(5550100), ""}, []any{int64(9), Masked, Masked, ""}},
		{"typed nil is masked", []any{int64(10), (*string)(nil), "x", nil}, []any{int64(10), Masked, Masked, nil}},
		{"row wider than its columns", []any{int64(11), "a@example.com", "p", "c", "secret"}, []any{int64(11), Masked, Masked, "c", nil}},
		{"empty row", []any{}, []any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := slices.Clone(tt.row)
			got := MaskPreview(shown, tt.row)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MaskPreview = %#v, want %#v", got, tt.want)
			}
			if !reflect.DeepEqual(tt.row, in) {
				t.Errorf("MaskPreview changed its input row: %#v", tt.row)
			}
		})
	}
}
