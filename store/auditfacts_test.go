package store_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// TestWithAuditFacts: the gate's facts are recorded whole beside the
// caller's arguments, a caller's own $facts never is, and arguments too
// large to leave room for the facts give way to them.
func TestWithAuditFacts(t *testing.T) {
	t.Parallel()
	facts := map[string]any{"estimated_size": int64(120000), "model": "customers"}
	huge := map[string]any{" padding": strings.Repeat("x", 900), "!more": strings.Repeat("y", 900)}
	for i := range 40 {
		huge[strings.Repeat(" ", i+1)] = strings.Repeat("z", 900)
	}
	cases := []struct {
		name      string
		args      map[string]any
		facts     map[string]any
		wantFacts bool
		wantArgs  []string // argument names kept
		truncated bool
	}{
		{"beside the arguments", map[string]any{"name": "vip"}, facts, true, []string{"name"}, false},
		{"no arguments", nil, facts, true, nil, false},
		{"a caller's own $facts is replaced", map[string]any{"name": "vip", store.AuditFactsArg: map[string]any{"estimated_size": 1}}, facts, true, []string{"name"}, false},
		{"a caller's own $facts is dropped", map[string]any{"name": "vip", store.AuditFactsArg: 1}, nil, false, []string{"name"}, false},
		{"nothing to record", map[string]any{"name": "vip"}, nil, false, []string{"name"}, false},
		{"arguments that leave no room give way", huge, facts, true, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := store.BoundAudit(store.AuditEvent{Args: store.WithAuditFacts(tc.args, tc.facts)}).Args
			b, _ := json.Marshal(got[store.AuditFactsArg])
			want, _ := json.Marshal(tc.facts)
			if tc.wantFacts && string(b) != string(want) || !tc.wantFacts && got[store.AuditFactsArg] != nil {
				t.Errorf("recorded facts %s, want %s", b, want)
			}
			for _, name := range tc.wantArgs {
				if got[name] == nil {
					t.Errorf("argument %q was dropped: %v", name, got)
				}
			}
			if _, cut := got["_truncated"]; cut != tc.truncated || tc.truncated && len(got) != 2 {
				t.Errorf("truncated %v, want %v: %d members", cut, tc.truncated, len(got))
			}
		})
	}
}
