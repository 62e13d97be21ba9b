package guardrails

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// Crossed returns the ids of the active policies that apply to the call in
// describes and whose condition comes out differently on reviewed, the
// facts a person approved the call with, than on in.Facts, the facts now:
// a fact moved across one of their thresholds since the review (an
// audience grew past a size limit, say). It looks at every policy type,
// whatever effect won the decision. Both sets of facts are compared as
// JSON reads them back, so a count stored with an approval equals the same
// count computed now. A condition that can be evaluated on one set but not
// on the other counts as crossed (fail closed). It returns an error only
// when the facts cannot be encoded as JSON.
func (e *Engine) Crossed(ctx context.Context, in Input, reviewed map[string]any) ([]string, error) {
	then, err := jsonFacts(reviewed)
	if err != nil {
		return nil, fmt.Errorf("reviewed facts: %w", err)
	}
	now, err := jsonFacts(in.Facts)
	if err != nil {
		return nil, fmt.Errorf("current facts: %w", err)
	}
	var crossed []string
	for _, p := range e.Policies().Policies {
		if p.program == nil || !p.applies(in) {
			continue
		}
		if outcome(ctx, p, in, then) != outcome(ctx, p, in, now) {
			crossed = append(crossed, p.ID)
		}
	}
	return crossed, nil
}

// outcome evaluates p's condition for the call with the given facts:
// "true", "false" or "error".
func outcome(ctx context.Context, p Policy, in Input, facts map[string]any) string {
	in.Facts = facts
	vars, err := activation(in)
	if err != nil {
		return "error"
	}
	out, _, err := p.program.ContextEval(ctx, vars)
	if err != nil {
		return "error"
	}
	hit, ok := out.Value().(bool)
	switch {
	case !ok:
		return "error"
	case hit:
		return "true"
	}
	return "false"
}

// jsonFacts returns facts as encoding them in JSON and reading them back
// gives, with integral numbers as int64 and others as float64, the types
// the tools compute facts in.
func jsonFacts(facts map[string]any) (map[string]any, error) {
	b, err := json.Marshal(facts)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	for k, v := range out {
		out[k] = jsonNumbers(v)
	}
	return out, nil
}

// jsonNumbers replaces the json.Numbers in v by int64 or float64.
func jsonNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = jsonNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = jsonNumbers(v[k])
		}
	}
	return v
}
