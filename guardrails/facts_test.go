package guardrails

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// policyWith is a policy file with one require_approval policy on audience
// writes whose condition is cond, the condition on line 7.
func policyWith(cond string) string {
	return "policies:\n  - id: p\n    type: require_approval\n    resources: [audience]\n    operations: [create, update]\n    message: m\n    condition: " + cond + "\n"
}

func TestPolicyNamingUnknownFactFailsAtLoad(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, cond string
		want       []string
	}{
		{"misspelt fact", "facts.estimated_sise > 100000",
			[]string{"policies.yaml:7: policy p: condition:", "undeclared reference to 'facts.estimated_sise'", "did you mean 'facts.estimated_size'", "facts: estimated_size, true_size"}},
		{"fact that does not exist", "facts.rows_sent > 10", []string{"policies.yaml:7:", "facts.rows_sent"}},
		{"facts as a map", `facts["estimated_size"] > 10`, []string{"policies.yaml:7:", "undeclared reference to 'facts'"}},
		{"string fact compared with a number", "facts.model > 3", []string{"policies.yaml:7:", "no matching overload"}},
		{"number fact compared with a string", `facts.estimated_size == "big"`, []string{"policies.yaml:7:", "no matching overload"}},
		{"unknown field of a dependent", "facts.dependents.exists(d, d.sinced)", []string{"policies.yaml:7:", "undefined field 'sinced'"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePolicies("policies.yaml", []byte(policyWith(tc.cond)))
			if err == nil {
				t.Fatalf("%s loaded", tc.cond)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestPolicyOnDeclaredFactsLoads(t *testing.T) {
	t.Parallel()
	for _, cond := range []string{
		"facts.estimated_size > 100000",
		"facts.estimated_size > 100000.5",
		"facts.max_dependent_change_pct > 10",
		"facts.caller_filtered && facts.visible_size < facts.true_size",
		`facts.destination_environment == "production" || facts.destination_category == "advertising"`,
		"facts.dependents.exists(d, d.synced && d.size_after - d.size_before > 1000)",
		`facts.model.startsWith("customers")`,
	} {
		if _, err := ParsePolicies("policies.yaml", []byte(policyWith(cond))); err != nil {
			t.Errorf("%s: %v", cond, err)
		}
	}
}

// TestFactsDecideByTheirDeclaredType: facts decide alike whatever numeric
// type they come in (as the tools compute them, as JSON reads them back),
// and a fact the call lacks, an undeclared one or one of another type
// denies the calls its conditions apply to.
func TestFactsDecideByTheirDeclaredType(t *testing.T) {
	t.Parallel()
	set, err := ParsePolicies("p.yaml", []byte(`policies:
  - id: big
    type: require_approval
    resources: [audience]
    operations: [create]
    condition: facts.estimated_size > 10
    message: big
  - id: synced-dependent
    type: require_approval
    resources: [model]
    operations: [update]
    condition: facts.dependents.exists(d, d.synced) || facts.max_dependent_change_pct > 5
    message: a synced dependent changes
`))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(set, &memLimiter{})
	agent := store.Principal{Kind: store.KindAgent}
	dep := func(synced bool) []any {
		return []any{map[string]any{"id": "aud_1", "name": "vip", "size_before": 3, "size_after": 4, "synced": synced}}
	}
	cases := []struct {
		name      string
		resource  string
		op        string
		facts     map[string]any
		want      string
		wantError bool
	}{
		{"int64 over", "audience", "create", map[string]any{"estimated_size": int64(11)}, EffectRequireApproval, false},
		{"int under", "audience", "create", map[string]any{"estimated_size": 10}, EffectAllow, false},
		{"JSON number over", "audience", "create", map[string]any{"estimated_size": 11.0}, EffectRequireApproval, false},
		{"json.Number over", "audience", "create", map[string]any{"estimated_size": json.Number("11")}, EffectRequireApproval, false},
		{"fraction for a count", "audience", "create", map[string]any{"estimated_size": 10.5}, EffectDeny, true},
		{"text for a count", "audience", "create", map[string]any{"estimated_size": "11"}, EffectDeny, true},
		{"fact missing", "audience", "create", map[string]any{}, EffectDeny, true},
		{"undeclared fact beside", "audience", "create", map[string]any{"estimated_size": 1, "rows": 5}, EffectDeny, true},
		{"synced dependent", "model", "update", map[string]any{"dependents": dep(true), "max_dependent_change_pct": 0}, EffectRequireApproval, false},
		{"typed dependents", "model", "update", map[string]any{"dependents": []Dependent{{ID: "aud_1", Synced: true}}, "max_dependent_change_pct": 0.0}, EffectRequireApproval, false},
		{"unsynced dependent, small change", "model", "update", map[string]any{"dependents": dep(false), "max_dependent_change_pct": int64(5)}, EffectAllow, false},
		{"no dependents", "model", "update", map[string]any{"dependents": []any{}, "max_dependent_change_pct": 0.0}, EffectAllow, false},
		{"dependent with an undeclared field", "model", "update", map[string]any{"dependents": []any{map[string]any{"id": "aud_1", "email": "x"}}, "max_dependent_change_pct": 0.0}, EffectDeny, true},
		{"facts of another tool do not matter without a condition", "model", "delete", map[string]any{"rows": "x"}, EffectAllow, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := e.DryRun(context.Background(), Input{Principal: agent, Source: store.SourceAI, Resource: tc.resource, Operation: tc.op, Facts: tc.facts})
			if d.Effect != tc.want || (err != nil) != tc.wantError {
				t.Errorf("%v: %s (%s) err=%v, want %s (error %v)", tc.facts, d.Effect, d.Reason, err, tc.want, tc.wantError)
			}
		})
	}
}

func TestCheckFacts(t *testing.T) {
	t.Parallel()
	declared := []string{"estimated_size", "model", "dependents", "caller_filtered"}
	cases := []struct {
		name  string
		facts map[string]any
		want  string // "" for no error
	}{
		{"declared and typed", map[string]any{"estimated_size": int64(5), "model": "customers", "caller_filtered": false,
			"dependents": []any{map[string]any{"id": "aud_1", "name": "a", "size_before": int64(1), "size_after": int64(2), "synced": true}}}, ""},
		{"a subset", map[string]any{"model": "customers"}, ""},
		{"none", nil, ""},
		{"declared elsewhere, not by the tool", map[string]any{"true_size": int64(5)}, `fact "true_size" is not one the tool declares`},
		{"declared by the tool, not in guardrails", map[string]any{"estimated_sise": int64(5)}, `fact "estimated_sise" is not one the tool declares`},
		{"wrong type", map[string]any{"model": 5}, `fact "model" must be string, not int`},
		{"a flag as text", map[string]any{"caller_filtered": "yes"}, `fact "caller_filtered" must be bool`},
		{"a row value in a dependent", map[string]any{"dependents": []any{map[string]any{"id": "aud_1", "email": "a@b"}}}, `fact "dependents" must be list(Dependent)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckFacts(declared, tc.facts)
			if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && !strings.Contains(got, tc.want)) {
				t.Errorf("CheckFacts: %v, want %q", err, tc.want)
			}
		})
	}
	if err := CheckFacts([]string{"estimated_sise"}, map[string]any{"estimated_sise": 1}); err == nil || !strings.Contains(err.Error(), "not declared in guardrails") {
		t.Errorf("a tool declaring an unknown fact: %v", err)
	}
}

// TestFactDeclarations: every fact has a name, a known type, a label and a
// meaning, once.
func TestFactDeclarations(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, f := range AllFacts() {
		if f.Name == "" || f.Label == "" || f.Meaning == "" || seen[f.Name] {
			t.Errorf("fact %+v: needs a unique name, a label and a meaning", f)
		}
		seen[f.Name] = true
		switch f.Type {
		case FactInt, FactDouble, FactBool, FactString, FactDependents:
		default:
			t.Errorf("fact %s: unknown type %q", f.Name, f.Type)
		}
		if g, ok := LookupFact(f.Name); !ok || g != f {
			t.Errorf("LookupFact(%s) = %+v, %v", f.Name, g, ok)
		}
	}
}
