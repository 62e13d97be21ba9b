package guardrails

import (
	"testing"

	"github.com/signalsmith/agent-server/store"
)

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
	}
	shown := PreviewColumns(cols)
	var names []string
	for _, c := range shown {
		names = append(names, c.Name)
	}
	if len(names) != 3 || names[0] != "id" || names[1] != "email" || names[2] != "phone" {
		t.Fatalf("PreviewColumns = %v, want [id email phone]", names)
	}
	got := MaskPreview(shown, []any{int64(7), "a@example.com", nil})
	if got[0] != int64(7) || got[1] != Masked || got[2] != nil {
		t.Errorf("MaskPreview = %v", got)
	}
	// A row wider than its columns never passes values through.
	if got := MaskPreview(shown[:1], []any{int64(1), "secret"}); got[1] != nil {
		t.Errorf("extra value passed through: %v", got)
	}
	for level, want := range map[string]bool{"none": true, "redacted": true, "sync_only": true, "blocked": true, "": false, "public": false} {
		if ValidPII(level) != want {
			t.Errorf("ValidPII(%q) = %v", level, !want)
		}
	}
}
