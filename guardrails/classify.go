package guardrails

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/signalsmith/agent-server/store"
)

// PII classification by people (DESIGN.md section 3). The command line
// (signalsmith pii) and the JSON API (/api/v1/pii) both check what a person
// asks for here, so they accept and refuse the same things.

// ParsePIIFile reads a classification file: a YAML mapping of warehouse
// columns to levels,
//
//	analytics.customers.email: redacted
//	analytics.customers.notes: blocked
//
// Errors name the file and line. A column given twice is an error.
func ParsePIIFile(name string, data []byte) ([]store.PIIClass, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: no columns: write one line per column, such as analytics.customers.email: redacted", name)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of schema.table.column to a level", name, root.Line)
	}
	var out []store.PIIClass
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s:%d: want schema.table.column: level", name, k.Line)
		}
		ref, err := store.NormalizeSourceColumn(k.Value)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, k.Line, err)
		}
		if line, dup := seen[ref]; dup {
			return nil, fmt.Errorf("%s:%d: %s is classified already on line %d", name, k.Line, ref, line)
		}
		seen[ref] = k.Line
		if !ValidPII(v.Value) {
			return nil, fmt.Errorf("%s:%d: %q is not a PII level: use none, redacted, sync_only or blocked", name, v.Line, v.Value)
		}
		out = append(out, store.PIIClass{Column: ref, Level: v.Value})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no columns: write one line per column, such as analytics.customers.email: redacted", name)
	}
	return out, nil
}

// CheckPIIClasses checks that every class names a level and a column the
// warehouse has (schema.table.column, case-insensitive), and returns them
// normalized. It returns an error wrapping store.ErrInvalid that names the
// first bad one.
func CheckPIIClasses(ctx context.Context, wh store.Warehouse, classes []store.PIIClass) ([]store.PIIClass, error) {
	if len(classes) == 0 {
		return nil, fmt.Errorf("no columns to classify: %w", store.ErrInvalid)
	}
	tables := map[string]store.Table{}
	out := make([]store.PIIClass, len(classes))
	for i, c := range classes {
		ref, err := store.NormalizeSourceColumn(c.Column)
		if err != nil {
			return nil, err
		}
		if !ValidPII(c.Level) {
			return nil, fmt.Errorf("%s: %q is not a PII level (none, redacted, sync_only or blocked): %w", ref, c.Level, store.ErrInvalid)
		}
		parts := strings.Split(ref, ".")
		key := parts[0] + "." + parts[1]
		t, ok := tables[key]
		if !ok {
			t, err = wh.Describe(ctx, parts[0], parts[1])
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("%s: the warehouse has no table %s: %w", ref, key, store.ErrInvalid)
			}
			if err != nil {
				return nil, fmt.Errorf("describe %s: %w", key, err)
			}
			tables[key] = t
		}
		found := false
		for _, col := range t.Columns {
			found = found || strings.EqualFold(col.Name, parts[2])
		}
		if !found {
			return nil, fmt.Errorf("%s: table %s has no column %s: %w", ref, key, parts[2], store.ErrInvalid)
		}
		c.Column = ref
		out[i] = c
	}
	return out, nil
}

// PIIColumns lists every column of the warehouse's tables with its level
// under classes: an unclassified one is blocked, with Classified false.
func PIIColumns(ctx context.Context, wh store.Warehouse, classes []store.PIIClass) ([]store.PIIClass, error) {
	byRef := make(map[string]store.PIIClass, len(classes))
	for _, c := range classes {
		byRef[c.Column] = c
	}
	tables, err := wh.Tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var out []store.PIIClass
	for _, tb := range tables {
		t, err := wh.Describe(ctx, tb.Schema, tb.Name)
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", tb.QualifiedName(), err)
		}
		for _, col := range t.Columns {
			ref := store.SourceColumn(t.Schema, t.Name, col.Name)
			c, ok := byRef[ref]
			if !ok {
				c = store.PIIClass{Column: ref, Level: store.PIIBlocked}
			}
			out = append(out, c)
		}
	}
	return out, nil
}
