package audience

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// countingCatalog counts the included audiences Compile looks up: the work
// of inlining them.
type countingCatalog struct {
	*Snapshot
	lookups atomic.Int64
}

func (c *countingCatalog) Audience(id string) (store.Audience, error) {
	c.lookups.Add(1)
	return c.Snapshot.Audience(id)
}

// fanOut returns audiences fan_0 ... fan_{levels-1}: fan_0 is leaf, and
// each further one includes the one below it width times, so compiling
// fan_L inlines width^L copies of the leaf.
func fanOut(levels, width int, leaf string) []store.Audience {
	auds := []store.Audience{{ID: "fan_0", Name: "fan_0", ModelID: "mdl_customers", Definition: audienceDef(leaf)}}
	for l := 1; l < levels; l++ {
		kids := make([]string, width)
		for i := range kids {
			kids[i] = fmt.Sprintf(`{"in_audience": "fan_%d"}`, l-1)
		}
		auds = append(auds, store.Audience{ID: fmt.Sprintf("fan_%d", l), Name: fmt.Sprintf("fan_%d", l), ModelID: "mdl_customers",
			Definition: audienceDef(`{"any": [` + strings.Join(kids, ", ") + `]}`)})
	}
	return auds
}

func TestCompileStopsExpandingInclusionsAtTheBound(t *testing.T) {
	t.Parallel()
	wide := make([]string, MaxConditions-1)
	for i := range wide {
		wide[i] = `{"in_audience": "fan_5"}`
	}
	tests := []struct {
		name, cond string
		levels     int
		width      int
		leaf       string
	}{
		// 6^7 (about 280,000) copies of a tiny leaf: the SQL of each level
		// stays small, so only counting the expansion stops it early.
		{"deep fan-out of empty groups", `{"in_audience": "fan_7"}`, 8, 6, `{"all": []}`},
		{"deep fan-out of comparisons", `{"not_in_audience": "fan_7"}`, 8, 6, `{"column": "state", "operator": "equals", "value": "CA"}`},
		// 99 inclusions of an audience of 6^5 leaves, each just under the
		// SQL size bound on its own.
		{"wide inclusion of a large audience", `{"any": [` + strings.Join(wide, ", ") + `]}`, 6, 6, `{"all": []}`},
		{"inclusions in a not", `{"not": {"any": [{"in_audience": "fan_6"}, {"in_audience": "fan_6"}]}}`, 7, 8, `{"all": []}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cat := &countingCatalog{Snapshot: NewSnapshot(testModels(), fanOut(tt.levels, tt.width, tt.leaf))}
			_, err := Compile(mustParse(t, `{"model": "customers", "conditions": `+tt.cond+`}`), cat,
				Options{Dialect: sqlite.Dialect{}, Now: testNow})
			if !errors.Is(err, ErrTooComplex) || !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("Compile: %v, want ErrTooComplex", err)
			}
			if want := fmt.Sprintf("more than %d conditions", MaxExpandedConditions); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say it expands to %s", err, want)
			}
			// Each expanded inclusion is looked up once to inline it;
			// validating a definition (the one compiled, and each inlined
			// one) looks up its own inclusions, at most MaxConditions,
			// before they are expanded and counted.
			if n, most := cat.lookups.Load(), int64(MaxExpandedConditions+2*MaxConditions); n > most {
				t.Errorf("Compile looked up %d included audiences, more than %d", n, most)
			}
		})
	}
}

func TestCompileInclusionsUnderTheBound(t *testing.T) {
	t.Parallel()
	// 6^4 = 1296 inlined leaves compile as before.
	cat := NewSnapshot(testModels(), fanOut(5, 6, `{"column": "state", "operator": "equals", "value": "CA"}`))
	q, err := Compile(mustParse(t, `{"model": "customers", "conditions": {"in_audience": "fan_4"}}`), cat,
		Options{Dialect: sqlite.Dialect{}, Now: testNow})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if n := len(q.Where().Args); n != 1296 {
		t.Errorf("%d bound values, want 1296", n)
	}
}
