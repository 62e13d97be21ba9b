package guardrails

import (
	"context"
	"slices"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// Crossed names the policies whose condition a change of facts flips, and
// nothing for facts that moved without crossing a threshold or came back
// from JSON as other number types.
func TestCrossedNamesThresholdsTheFactsMovedAcross(t *testing.T) {
	t.Parallel()
	set, err := ParsePolicies("t.yaml", []byte(`policies:
  - id: big
    type: require_approval
    resources: [audience]
    operations: [create, update]
    sources: [AI]
    condition: facts.estimated_size > 100
    message: big
  - id: huge
    type: deny
    resources: [audience]
    operations: [create, update]
    sources: [AI]
    condition: facts.estimated_size > 1000
    message: huge
  - id: syncs-only
    type: require_approval
    resources: [sync]
    operations: [create]
    sources: [AI]
    condition: facts.estimated_size > 100
    message: not for audiences
`))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(set, nil)
	in := Input{Principal: store.Principal{KeyID: "k"}, Source: store.SourceAI, Tool: "create_audience", Resource: "audience", Operation: "create"}
	cases := []struct {
		name     string
		reviewed map[string]any
		now      map[string]any
		want     []string
	}{
		{"unchanged, as read back from JSON", map[string]any{"estimated_size": float64(150)}, map[string]any{"estimated_size": int64(150)}, nil},
		{"grew without crossing", map[string]any{"estimated_size": float64(150)}, map[string]any{"estimated_size": int64(900)}, nil},
		{"grew past a threshold", map[string]any{"estimated_size": float64(150)}, map[string]any{"estimated_size": int64(5000)}, []string{"huge"}},
		{"grew past two", map[string]any{"estimated_size": float64(50)}, map[string]any{"estimated_size": int64(5000)}, []string{"big", "huge"}},
		{"shrank below one", map[string]any{"estimated_size": float64(150)}, map[string]any{"estimated_size": int64(50)}, []string{"big"}},
		{"a fact gone", map[string]any{"estimated_size": float64(150)}, map[string]any{}, []string{"big", "huge"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := in
			in.Facts = tc.now
			got, err := e.Crossed(context.Background(), in, tc.reviewed)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Crossed = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
