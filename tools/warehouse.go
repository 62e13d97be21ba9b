package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/store"
)

type listTablesArgs struct{}

type describeTableArgs struct {
	Table string `json:"table" jsonschema:"the table to describe, as schema.table (for example analytics.customers) or a bare table name in the analytics schema"`
}

func warehouseTools(d Deps) []Tool {
	return []Tool{
		{
			Spec: mcp.NewTool("list_tables", append(readOnly("List warehouse tables"),
				mcp.WithDescription("List the warehouse tables you may read, as schema.table names. Use describe_table to see a table's columns before building a model or an audience. In SQL, name a table without its schema (customers, not analytics.customers): a table with an access filter for you can only be read that way, and shows no row count."),
				mcp.WithInputSchema[listTablesArgs]())...),
			Permission: "sources.read",
			Resource:   "table",
			Handler: func(ctx context.Context, call *Call, args json.RawMessage) (Output, error) {
				if err := decode(args, &listTablesArgs{}); err != nil {
					return Output{}, err
				}
				// A table with an access filter for the caller shows no
				// row count: the statistics count all rows.
				tables, err := call.Warehouse.Tables(ctx)
				if err != nil {
					return Output{}, fmt.Errorf("list tables: %w", err)
				}
				names := make([]string, len(tables))
				for i, t := range tables {
					names[i] = t.QualifiedName()
				}
				call.Summary = fmt.Sprintf("%d tables", len(tables))
				return Output{
					Data: map[string]any{"tables": tables},
					Text: "Tables: " + strings.Join(names, ", "),
				}, nil
			},
		},
		{
			Spec: mcp.NewTool("describe_table", append(readOnly("Describe a warehouse table"),
				mcp.WithDescription("Show the columns of one warehouse table with their types, nullability and PII classification (set by people; a model column that reads a column takes at least its level; unclassified is blocked). Column names from here are what models and audience conditions refer to."),
				mcp.WithInputSchema[describeTableArgs]())...),
			Permission: "sources.read",
			Resource:   "table",
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args describeTableArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				if err := required("table", args.Table); err != nil {
					return Output{}, err
				}
				schema, name := "analytics", args.Table
				if s, n, ok := strings.Cut(args.Table, "."); ok {
					schema, name = s, n
				}
				call.ResourceID = schema + "." + name
				t, err := call.Warehouse.Describe(ctx, schema, name)
				if err != nil {
					return Output{}, notFound(err, "table", args.Table, "list_tables")
				}
				levels, err := piiLevels(ctx, d, call)
				if err != nil {
					return Output{}, err
				}
				var b strings.Builder
				fmt.Fprintf(&b, "%s:", t.QualifiedName())
				for i, c := range t.Columns {
					t.Columns[i].PII = levels.Level(store.SourceColumn(t.Schema, t.Name, c.Name))
					fmt.Fprintf(&b, " %s %s (%s);", c.Name, c.Type, t.Columns[i].PII)
				}
				call.Summary = fmt.Sprintf("%d columns", len(t.Columns))
				return Output{Data: t, Text: b.String()}, nil
			},
		},
	}
}
