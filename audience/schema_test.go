package audience

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	santhosh "github.com/santhosh-tekuri/jsonschema/v6"
)

// invalidForSchema are definitions the schema must refuse (Parse refuses
// them too).
var invalidForSchema = map[string]string{
	"not an object":         `[]`,
	"missing model":         `{"conditions": {"all": []}}`,
	"missing conditions":    `{"model": "customers"}`,
	"empty model":           `{"model": "", "conditions": {"all": []}}`,
	"unknown top field":     `{"model": "customers", "conditions": {"all": []}, "version": 2}`,
	"unknown field":         `{"model": "customers", "conditions": {"colum": "state", "operator": "is_null"}}`,
	"empty condition":       `{"model": "customers", "conditions": {}}`,
	"two forms":             `{"model": "customers", "conditions": {"all": [], "any": []}}`,
	"all not a list":        `{"model": "customers", "conditions": {"all": {}}}`,
	"any empty":             `{"model": "customers", "conditions": {"any": []}}`,
	"column not a string":   `{"model": "customers", "conditions": {"column": 3, "operator": "is_null"}}`,
	"unknown operator":      `{"model": "customers", "conditions": {"column": "state", "operator": "equal", "value": "CA"}}`,
	"missing value":         `{"model": "customers", "conditions": {"column": "state", "operator": "equals"}}`,
	"null value":            `{"model": "customers", "conditions": {"column": "state", "operator": "equals", "value": null}}`,
	"object value":          `{"model": "customers", "conditions": {"column": "state", "operator": "equals", "value": {}}}`,
	"equals a list":         `{"model": "customers", "conditions": {"column": "state", "operator": "equals", "value": ["CA"]}}`,
	"value with is_null":    `{"model": "customers", "conditions": {"column": "state", "operator": "is_null", "value": true}}`,
	"between one value":     `{"model": "customers", "conditions": {"column": "lifetime_value", "operator": "between", "value": [1]}}`,
	"in scalar":             `{"model": "customers", "conditions": {"column": "state", "operator": "in", "value": "CA"}}`,
	"in empty":              `{"model": "customers", "conditions": {"column": "state", "operator": "in", "value": []}}`,
	"in nested list":        `{"model": "customers", "conditions": {"column": "state", "operator": "in", "value": [["CA"]]}}`,
	"string too long":       `{"model": "customers", "conditions": {"column": "state", "operator": "equals", "value": "` + strings.Repeat("x", MaxStringLength+1) + `"}}`,
	"days zero":             `{"model": "customers", "conditions": {"column": "signup_at", "operator": "within_last_days", "value": 0}}`,
	"days fraction":         `{"model": "customers", "conditions": {"column": "signup_at", "operator": "within_last_days", "value": 1.5}}`,
	"days text":             `{"model": "customers", "conditions": {"column": "signup_at", "operator": "within_last_days", "value": "30"}}`,
	"no aggregate":          `{"model": "customers", "conditions": {"relationship": "orders", "operator": "greater_than", "value": 1}}`,
	"unknown aggregate":     `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "total", "column": "amount", "operator": "greater_than", "value": 1}}`,
	"count with column":     `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "count", "column": "amount", "operator": "greater_than", "value": 1}}`,
	"sum without column":    `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "sum", "operator": "greater_than", "value": 1}}`,
	"aggregate contains":    `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "count", "operator": "contains", "value": 1}}`,
	"aggregate text value":  `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": "2"}}`,
	"count fraction":        `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 2.5}}`,
	"aggregate between one": `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "sum", "column": "amount", "operator": "between", "value": [1]}}`,
	"window without days":   `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 1, "within": {"column": "ordered_at"}}}`,
	"window too long":       `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 1, "within": {"column": "ordered_at", "last_days": 99999}}}`,
	"relationship in where": `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 1, "where": {"relationship": "customer", "aggregate": "count", "operator": "greater_than", "value": 0}}}`,
	"audience in where":     `{"model": "customers", "conditions": {"relationship": "orders", "aggregate": "count", "operator": "greater_than", "value": 1, "where": {"all": [{"in_audience": "aud_ca_pro"}]}}}`,
	"where on a column":     `{"model": "customers", "conditions": {"column": "state", "operator": "is_null", "where": {"all": []}}}`,
	"audience with extra":   `{"model": "customers", "conditions": {"in_audience": "aud_ca_pro", "operator": "equals"}}`,
	"audience not a string": `{"model": "customers", "conditions": {"not_in_audience": ["aud_ca_pro"]}}`,
	"nested invalid":        `{"model": "customers", "conditions": {"all": [{"any": [{"not": {"column": "state", "operator": "equals"}}]}]}}`,
}

func resolvedSchema(t *testing.T, raw []byte) *jsonschema.Resolved {
	t.Helper()
	var s jsonschema.Schema
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("unmarshal schema: %v", err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		t.Fatalf("resolve schema: %v", err)
	}
	return rs
}

func instance(t *testing.T, src string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(src), &v); err != nil {
		t.Fatalf("instance %s: %v", src, err)
	}
	return v
}

func TestSchema(t *testing.T) {
	t.Parallel()
	rs := resolvedSchema(t, Schema())
	for name, src := range validDefinitions {
		if err := rs.Validate(instance(t, src)); err != nil {
			t.Errorf("valid %q: schema refused it: %v", name, err)
		}
	}
	for name, src := range invalidForSchema {
		if err := rs.Validate(instance(t, src)); err == nil {
			t.Errorf("invalid %q: schema accepted it", name)
		}
		// The schema never refuses what Parse accepts, nor the other way
		// round, for these.
		if _, err := Parse([]byte(src)); err == nil {
			t.Errorf("invalid %q: Parse accepted it", name)
		}
	}
}

func TestSchemaIsACopy(t *testing.T) {
	t.Parallel()
	a := Schema()
	a[0] = 'x'
	if b := Schema(); b[0] != '{' {
		t.Errorf("Schema returned shared bytes")
	}
	var doc map[string]any
	if err := json.Unmarshal(Schema(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["$id"] != SchemaID {
		t.Errorf("$id = %v, want %s", doc["$id"], SchemaID)
	}
}

// toolSchema embeds the definition schema in a tool's input schema, as the
// audience tools do.
func toolSchema(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []string{"name", "definition"},
		"properties": map[string]any{
			"name":       map[string]any{"type": "string"},
			"definition": json.RawMessage(Schema()),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSchemaEmbedded(t *testing.T) {
	t.Parallel()
	args := func(def string) string { return `{"name": "x", "definition": ` + def + `}` }

	// google/jsonschema-go, which mcp-go derives tool schemas with.
	rs := resolvedSchema(t, toolSchema(t))
	// santhosh-tekuri/jsonschema, which mcp-go validates tool input with.
	doc, err := santhosh.UnmarshalJSON(bytes.NewReader(toolSchema(t)))
	if err != nil {
		t.Fatal(err)
	}
	c := santhosh.NewCompiler()
	if err := c.AddResource("mem:///tool.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("mem:///tool.json")
	if err != nil {
		t.Fatalf("compile embedded schema: %v", err)
	}
	check := func(src string) (errGoogle, errSanthosh error) {
		inst, err := santhosh.UnmarshalJSON(strings.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		return rs.Validate(instance(t, src)), sch.Validate(inst)
	}
	for name, src := range validDefinitions {
		g, s := check(args(src))
		if g != nil || s != nil {
			t.Errorf("valid %q embedded: refused (jsonschema-go: %v; santhosh: %v)", name, g, s)
		}
	}
	for name, src := range invalidForSchema {
		g, s := check(args(src))
		if g == nil || s == nil {
			t.Errorf("invalid %q embedded: accepted (jsonschema-go: %v; santhosh: %v)", name, g, s)
		}
	}
}
