package guardrails

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/ext"
)

// FactType is the type of a guardrail fact, as a policy condition sees it.
type FactType string

// Fact types. Every fact is a size, a count, a percentage, a flag, the name
// of an object or a list of Dependents: never a value read from a row, so
// facts can be recorded in the audit trail and shown to the human who
// reviews a call.
const (
	FactInt        FactType = "int"
	FactDouble     FactType = "double"
	FactBool       FactType = "bool"
	FactString     FactType = "string"
	FactDependents FactType = "list(Dependent)"
)

// Fact declares one guardrail fact: what a tool may compute before the
// decision and a policy condition may read as facts.NAME.
type Fact struct {
	Name string
	Type FactType
	// Label is what a person reads beside the value (the approval page).
	Label string
	// Meaning says what the value is, for the README and check_action.
	Meaning string
	// Unfiltered facts are counted beyond the caller's access filters: the
	// guardrails and the reviewer see them, a caller with filters never
	// reads them back (it would learn about rows kept from it).
	Unfiltered bool
}

// Dependent is one saved audience a model or audience write changes, as
// the fact "dependents" lists it: sizes are true sizes.
type Dependent struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	SizeBefore int64  `json:"size_before"`
	SizeAfter  int64  `json:"size_after"`
	Synced     bool   `json:"synced"`
}

// facts is every guardrail fact, in the order a person reads them. A tool
// may compute only these (tools.Tool.FactNames), and a policy naming any
// other is refused when it loads.
var facts = []Fact{
	{Name: "estimated_size", Type: FactInt, Label: "Estimated size", Unfiltered: true,
		Meaning: "people the audience would hold: its true size, the size policies measure"},
	{Name: "true_size", Type: FactInt, Label: "True size", Unfiltered: true,
		Meaning: "people the audience would hold, counted workspace-wide without the caller's access filters"},
	{Name: "visible_size", Type: FactInt, Label: "Size the caller sees",
		Meaning: "people the audience would hold within the caller's access filters"},
	{Name: "previous_size", Type: FactInt, Label: "Size before", Unfiltered: true,
		Meaning: "true size of the audience before the update"},
	{Name: "size_change", Type: FactInt, Label: "Size change", Unfiltered: true,
		Meaning: "true size after the update minus true size before"},
	{Name: "model", Type: FactString, Label: "Model",
		Meaning: "name of the model the call changes, or that the audience is over"},
	{Name: "caller_filtered", Type: FactBool, Label: "Caller has access filters",
		Meaning: "whether the caller has access filters (it then never reads the unfiltered facts back)"},
	{Name: "dependents_changed", Type: FactInt, Label: "Dependent audiences changed",
		Meaning: "other saved audiences whose query the write changes"},
	{Name: "dependents_counted", Type: FactInt, Label: "Dependent audiences counted",
		Meaning: "how many of those were counted (at most 20 a call)"},
	{Name: "dependents_uncounted", Type: FactInt, Label: "Dependent audiences not counted",
		Meaning: "how many of those were too many to count"},
	{Name: "synced_audiences_changed", Type: FactInt, Label: "Synced audiences changed",
		Meaning: "audiences a sync sends (the written one included) whose members may change"},
	{Name: "max_dependent_change", Type: FactInt, Label: "Largest change of a dependent audience", Unfiltered: true,
		Meaning: "largest change of a counted dependent's true size, in people"},
	{Name: "max_dependent_change_pct", Type: FactDouble, Label: "Largest change of a dependent audience (%)", Unfiltered: true,
		Meaning: "largest change of a counted dependent's true size, in percent of its size before (of 1 when it was empty)"},
	{Name: "max_dependent_size", Type: FactInt, Label: "Largest dependent audience after", Unfiltered: true,
		Meaning: "largest true size of a counted dependent after the write"},
	{Name: "dependents", Type: FactDependents, Label: "Dependent audiences", Unfiltered: true,
		Meaning: "each counted dependent: id, name, size_before, size_after (true sizes) and synced"},
	{Name: "destination_environment", Type: FactString, Label: "Destination environment",
		Meaning: "environment (production or sandbox) of the destination a sync sends to"},
	{Name: "destination_category", Type: FactString, Label: "Destination category",
		Meaning: "category (advertising, crm, marketing, analytics, other) of the destination a sync sends to"},
	{Name: "destination", Type: FactString, Label: "Destination",
		Meaning: "name of the destination a sync sends to"},
	{Name: "mapped_columns", Type: FactString, Label: "What leaves",
		Meaning: "each mapped column as column -> destination field (PII level, transform: none, sha256 or drop), separated by semicolons"},
	{Name: "mapped_redacted", Type: FactInt, Label: "Redacted columns sent (hashed)",
		Meaning: "mapped columns of PII level redacted, which leave only as their SHA-256"},
	{Name: "mapped_sync_only", Type: FactInt, Label: "Sync-only columns sent",
		Meaning: "mapped columns of PII level sync_only, which leave as they are unless hashed"},
	{Name: "dry_run_added", Type: FactInt, Label: "Members a run would add", Unfiltered: true,
		Meaning: "members a run now would send as new (a dry run, with the access filters of the sync's owner)"},
	{Name: "dry_run_changed", Type: FactInt, Label: "Members a run would change", Unfiltered: true,
		Meaning: "members a run now would send again because their mapped fields changed"},
	{Name: "dry_run_removed", Type: FactInt, Label: "Members a run would remove", Unfiltered: true,
		Meaning: "members a run now would remove from the destination (mirror mode)"},
	{Name: "dry_run_skipped", Type: FactInt, Label: "Members governance keeps out", Unfiltered: true,
		Meaning: "members of the audience a run would not send (consent and destination rules)"},
	{Name: "destination_members", Type: FactInt, Label: "Members the destination holds", Unfiltered: true,
		Meaning: "members earlier runs delivered that the destination still holds, the base of the change"},
	{Name: "dry_run_change_pct", Type: FactDouble, Label: "Change against the last run (%)", Unfiltered: true,
		Meaning: "members a run would add, change or remove, in percent of those the destination holds (of 1 when it holds none)"},
}

// AllFacts returns every declared fact, in the order a person reads them.
func AllFacts() []Fact { return slices.Clone(facts) }

// LookupFact returns the declaration of the fact called name.
func LookupFact(name string) (Fact, bool) {
	for _, f := range facts {
		if f.Name == name {
			return f, true
		}
	}
	return Fact{}, false
}

// CheckFacts checks facts a tool computed against the names it declares
// (tools.Tool.FactNames): every fact must be one of them, declared here,
// with a value of its type. The error names the first fact that is not;
// the gate denies such a call (fail closed).
func CheckFacts(declared []string, computed map[string]any) error {
	for _, name := range sortedNames(computed) {
		if !slices.Contains(declared, name) {
			return fmt.Errorf("fact %q is not one the tool declares", name)
		}
		f, ok := LookupFact(name)
		if !ok {
			return fmt.Errorf("fact %q is not declared in guardrails", name)
		}
		if _, err := f.Value(computed[name]); err != nil {
			return err
		}
	}
	return nil
}

// factVars are the facts as the variables a condition reads, one per fact
// (facts.NAME), each of its declared type. Numbers come as the tools
// compute them or as JSON reads them back (an approval's reviewed facts);
// an undeclared fact or a value of another type is an error.
func factVars(computed map[string]any, vars map[string]any) error {
	for name, v := range computed {
		f, ok := LookupFact(name)
		if !ok {
			return fmt.Errorf("fact %q is not declared", name)
		}
		typed, err := f.Value(v)
		if err != nil {
			return err
		}
		vars["facts."+name] = typed
	}
	return nil
}

// Value returns v as f's type: int64, float64, bool, string or
// []Dependent, from the types the tools compute facts in or those JSON
// reads them back in (an approval's facts). The error says what the value
// should be.
func (f Fact) Value(v any) (any, error) {
	bad := func() (any, error) {
		return nil, fmt.Errorf("fact %q must be %s, not %T", f.Name, f.Type, v)
	}
	switch f.Type {
	case FactInt:
		if i, ok := integer(v); ok {
			return i, nil
		}
		return bad()
	case FactDouble:
		if x, ok := number(v); ok {
			return x, nil
		}
		return bad()
	case FactBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return bad()
	case FactString:
		if s, ok := v.(string); ok {
			return s, nil
		}
		return bad()
	case FactDependents:
		if d, ok := v.([]Dependent); ok {
			return d, nil
		}
		// As the tools build it ([]any of maps) or JSON reads it back.
		b, err := json.Marshal(v)
		if err != nil {
			return bad()
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var out []Dependent
		if err := dec.Decode(&out); err != nil || out == nil {
			return bad()
		}
		return out, nil
	}
	return nil, fmt.Errorf("fact %q has unknown type %s", f.Name, f.Type)
}

// integer returns v as an int64 when it is a whole number that fits.
func integer(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		return int64(n), n == math.Trunc(n) && math.Abs(n) < 1<<53
	}
	return 0, false
}

// number returns v as a float64 when it is a number.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case json.Number:
		x, err := n.Float64()
		return x, err == nil
	}
	i, ok := integer(v)
	return float64(i), ok
}

// factDeclarations declares every fact to CEL as a variable facts.NAME of
// its type, so a condition naming an unknown fact, a field of a dependent
// that does not exist, or comparing a fact with a value of another type
// fails when the policy loads. There is no variable facts itself: a
// condition reads facts by name only.
func factDeclarations() []cel.EnvOption {
	opts := []cel.EnvOption{ext.NativeTypes(reflect.TypeFor[Dependent](), ext.ParseStructTag("json"))}
	for _, f := range facts {
		var t *cel.Type
		switch f.Type {
		case FactInt:
			t = cel.IntType
		case FactDouble:
			t = cel.DoubleType
		case FactBool:
			t = cel.BoolType
		case FactString:
			t = cel.StringType
		case FactDependents:
			t = cel.ListType(cel.ObjectType("guardrails.Dependent"))
		}
		opts = append(opts, cel.Variable("facts."+f.Name, t))
	}
	return opts
}

func sortedNames(m map[string]any) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// factNames returns the names of the declared facts, comma separated, for
// messages.
func factNames() string {
	names := make([]string, len(facts))
	for i, f := range facts {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}
