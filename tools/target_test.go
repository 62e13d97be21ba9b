package tools

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// TestEveryChangeOfAnExistingObjectHasATarget holds that a tool which
// changes or deletes the objects its Resolve finds also loads the object
// for the approval page's diff: a tool added later cannot forget it, or a
// reviewer would approve a change without seeing what it changes.
func TestEveryChangeOfAnExistingObjectHasATarget(t *testing.T) {
	t.Parallel()
	var checked []string
	for _, tool := range All(Deps{}) {
		op := tool.Operation()
		if (op != "update" && op != "delete") || tool.Resolve == nil {
			continue
		}
		checked = append(checked, tool.Spec.Name)
		if tool.Target == nil {
			t.Errorf("%s (%s) resolves the objects it names but has no Target: its approval page would show no diff", tool.Spec.Name, op)
		}
	}
	// The rule must cover at least the tools it was written for, so it
	// cannot pass by checking nothing.
	for _, name := range []string{"update_model", "delete_model", "update_audience", "delete_audience"} {
		if !slices.Contains(checked, name) {
			t.Errorf("%s is not among the tools checked (%v)", name, checked)
		}
	}
}

// TestCreatesHaveNoTarget holds that a tool that creates loads nothing:
// the approval page then says there is nothing yet to diff against,
// instead of diffing a new object against an old one that shares its name.
func TestCreatesHaveNoTarget(t *testing.T) {
	t.Parallel()
	for _, tool := range All(Deps{}) {
		if tool.Operation() == "create" && tool.Target != nil {
			t.Errorf("%s creates, but has a Target", tool.Spec.Name)
		}
	}
}

// TestTargetOf covers what targetOf returns for each shape of approval
// arguments: the reference it reads, a vanished object, a failed read.
func TestTargetOf(t *testing.T) {
	t.Parallel()
	broken := errors.New("disk on fire")
	get := func(_ context.Context, workspaceID, ref string) (store.Model, error) {
		switch ref {
		case "mdl_1":
			return store.Model{ID: ref, WorkspaceID: workspaceID, Name: "customers"}, nil
		case "mdl_broken":
			return store.Model{}, broken
		}
		return store.Model{}, store.ErrNotFound
	}
	target := targetOf("model", get, func(m store.Model) any { return m.Name + " in " + m.WorkspaceID })
	call := &Call{Principal: store.Principal{WorkspaceID: "ws_1"}}
	for _, tc := range []struct {
		name    string
		args    string
		want    Current
		wantErr error
	}{
		{"found, shown through the view", `{"model":"mdl_1","description":"x"}`, Current{ID: "mdl_1", Object: "customers in ws_1"}, nil},
		{"gone since the request", `{"model":"mdl_2"}`, Current{ID: "mdl_2"}, nil},
		{"the read fails", `{"model":"mdl_broken"}`, Current{ID: "mdl_broken"}, broken},
		{"no such argument", `{"audience":"aud_1"}`, Current{}, nil},
		{"not a string", `{"model":7}`, Current{}, nil},
		{"not an object", `["mdl_1"]`, Current{}, nil},
		{"malformed", `{"model":`, Current{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := target(context.Background(), call, json.RawMessage(tc.args))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
