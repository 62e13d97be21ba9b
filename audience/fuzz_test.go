package audience

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// fuzzScale keeps the fuzz warehouse small: every input that compiles runs
// its count on it.
const fuzzScale = 200

// FuzzParse feeds arbitrary bytes to the whole pipeline: Parse, Validate,
// Compile for both dialects, and the SQLite count on a demo warehouse. It
// must never panic; errors must be the documented kinds; a definition that
// parses must survive its canonical encoding unchanged; and SQL compiled
// from a valid definition must run on the warehouse (or stop at the
// query's time limit), never be refused or fail to compile there.
func FuzzParse(f *testing.F) {
	for _, src := range validDefinitions {
		f.Add([]byte(src))
	}
	for _, gc := range goldenCases {
		f.Add([]byte(gc.src))
	}
	w := openDemo(f, fuzzScale)
	cat := testCatalog()
	f.Fuzz(func(t *testing.T, data []byte) {
		pipeline(t, w, cat, data)
	})
}

// FuzzCondition builds one condition from fuzzed parts, so the fuzzer
// explores columns, operators, aggregates and values (given as JSON text)
// in combination rather than the JSON syntax around them. An empty
// aggregate makes a column condition, any other a relationship condition
// on orders.
func FuzzCondition(f *testing.F) {
	f.Add("state", "equals", `"CA"`, "")
	f.Add("signup_at", "between", `["2024-01-01", "2024-02-01 10:00:00"]`, "")
	f.Add("amount", "greater_than", `100.5`, "sum")
	w := openDemo(f, fuzzScale)
	cat := testCatalog()
	f.Fuzz(func(t *testing.T, column, operator, value, aggregate string) {
		col, _ := json.Marshal(column)
		op, _ := json.Marshal(operator)
		cond := `{"column": ` + string(col) + `, "operator": ` + string(op)
		if value != "" {
			cond += `, "value": ` + value
		}
		if aggregate != "" {
			agg, _ := json.Marshal(aggregate)
			cond += `, "relationship": "orders", "aggregate": ` + string(agg) +
				`, "within": {"column": "ordered_at", "last_days": 400}, "where": {"column": "channel", "operator": "not_equals", "value": "store"}`
		}
		cond += "}"
		pipeline(t, w, cat, []byte(`{"model": "customers", "conditions": {"any": [`+cond+`, {"not": `+cond+`}]}}`))
	})
}

// pipeline runs one input through parse, validate, compile and the
// warehouse, checking the properties the fuzz targets promise.
func pipeline(t *testing.T, w *sqlite.Warehouse, cat Catalog, data []byte) {
	def, err := Parse(data)
	if err != nil {
		if _, ok := asValidation(err); !ok || !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("Parse error %T %v is not a *ValidationError", err, err)
		}
		return
	}
	out, err := json.Marshal(def)
	if err != nil {
		t.Fatalf("Marshal of a parsed definition: %v", err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("the canonical encoding %s does not parse: %v", out, err)
	}
	if !reflect.DeepEqual(def, again) {
		t.Fatalf("the canonical encoding changed the definition:\n%#v\n%#v", def, again)
	}
	if err := Validate(def, cat); err != nil {
		if _, ok := asValidation(err); !ok {
			t.Fatalf("Validate error %T %v is not a *ValidationError", err, err)
		}
		return
	}
	for _, d := range dialects {
		q, err := Compile(def, cat, Options{Dialect: d, Now: testNow})
		if err != nil {
			// Only inclusions can fail after validation: cycles, depth,
			// audiences no longer valid, or too much SQL.
			if _, ok := asValidation(err); !ok && !errors.Is(err, ErrTooComplex) {
				t.Fatalf("Compile(%s) of a valid definition: %v", d.Name(), err)
			}
			return
		}
		c := q.Count()
		if n := placeholders(c.SQL); n != len(c.Args) {
			t.Fatalf("%s: %d placeholders, %d args\n%s", d.Name(), n, len(c.Args), c.SQL)
		}
		if _, err := q.Members([]string{"customer_id", "state"}, 5); err != nil {
			t.Fatalf("Members: %v", err)
		}
		if d.Name() != "sqlite" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err = w.Query(ctx, store.QueryLimits{Timeout: 10 * time.Second, MaxRows: 1}, c.SQL, c.Args...)
		cancel()
		if err != nil && !errors.Is(err, store.ErrQueryLimit) {
			t.Fatalf("the warehouse did not run the compiled SQL: %v\n%s\nargs %#v", err, c.SQL, c.Args)
		}
	}
}
