package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// sampleRows is how many rows CheckSQL reads to find the types of result
// columns that have no declared type.
const sampleRows = 100

// CheckSQL checks a SQL model's query (store.Warehouse) on one connection,
// with limits' timeout and filters, in three steps:
//
//  1. checkStatement on the text alone, as Query does: one statement,
//     read-only, allowed tables and functions only, nothing run. It gives
//     the result columns and, for a column read straight from a table, the
//     declared type. Column names must be unique (ignoring case, as SQLite
//     does), or the query is store.ErrInvalid.
//
//  2. checkStatement on the query wrapped as store.Model.Relation wraps it
//     for previews and audiences: SQL that only works alone (a trailing
//     semicolon, an unterminated comment, EXPLAIN) is refused here with
//     store.ErrQueryRefused, and so is SQL whose columns change when
//     wrapped.
//
//  3. The wrapped query runs with LIMIT 100: a column without a declared
//     type (an expression) takes the type of its first non-NULL value
//     (integer, number or string); one with no such value is a string.
//     An aggregate over a large table is computed in full by this step,
//     within the timeout (store.ErrQueryLimit past it).
//
//  4. The query is compiled once more without access filters, and never
//     run, for each column's lineage (lineage.go): a plain reference to
//     one analytics column, or an expression over every column the query
//     reads.
//
// Declared types map through store.ColumnType; every column is Nullable.
// Every refusal wraps store.ErrQueryRefused, so a caller needs one check;
// SQL that does not compile and result columns that are not uniquely named
// wrap store.ErrInvalid as well.
func (w *Warehouse) CheckSQL(ctx context.Context, limits store.QueryLimits, query string) ([]store.Column, error) {
	var cols []store.Column
	err := w.session(ctx, limits, func(s *session) error {
		info, err := s.check(query)
		if err != nil {
			return err
		}
		seen := make(map[string]bool, len(info.columns))
		for _, c := range info.columns {
			key := strings.ToLower(c.name)
			switch {
			case strings.TrimSpace(c.name) == "":
				return fmt.Errorf("query: a result column has no name: name it with AS: %w", store.ErrInvalid)
			case seen[key]:
				return fmt.Errorf("query: column name %q appears twice in the result: give each column a unique name with AS: %w", c.name, store.ErrInvalid)
			}
			seen[key] = true
		}

		rel, err := store.Model{SQL: query}.Relation(Dialect{})
		if err != nil {
			return err
		}
		wrapped := `SELECT * FROM ` + rel + ` AS "model" LIMIT ` + strconv.Itoa(sampleRows)
		winfo, err := s.check(wrapped)
		if errors.Is(err, store.ErrInvalid) {
			return fmt.Errorf("%w: the SQL does not work as a subquery (%v): write one SELECT, without a trailing semicolon or an unterminated comment",
				store.ErrQueryRefused, err)
		}
		if err != nil {
			return err
		}
		if len(winfo.columns) != len(info.columns) {
			return fmt.Errorf("%w: the SQL's columns change when it is used as a subquery", store.ErrQueryRefused)
		}
		for i, c := range winfo.columns {
			if c.name != info.columns[i].name {
				return fmt.Errorf("%w: the SQL's columns change when it is used as a subquery", store.ErrQueryRefused)
			}
		}

		res, err := s.read(wrapped, nil, sampleRows)
		if err != nil {
			return err
		}
		cols = make([]store.Column, len(info.columns))
		for i, c := range info.columns {
			t := store.ColumnType(c.declType)
			if t == "" {
				t = sampledType(res.Rows, i)
			}
			cols[i] = store.Column{Name: c.name, Type: t, Nullable: true}
		}
		return nil
	})
	if errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrQueryRefused) {
		// SQL that does not compile cannot be a model either.
		err = fmt.Errorf("%w: %w", store.ErrQueryRefused, err)
	}
	if err != nil {
		return nil, err
	}
	lineage, err := w.lineage(ctx, query)
	if err != nil {
		return nil, err
	}
	if len(lineage) != len(cols) {
		return nil, fmt.Errorf("%w: the SQL's columns change without access filters", store.ErrQueryRefused)
	}
	for i := range cols {
		cols[i].Lineage, cols[i].Sources, cols[i].Guards = lineage[i].Lineage, lineage[i].Sources, lineage[i].Guards
	}
	return cols, nil
}

// sampledType is the model type of the first non-NULL value in column i of
// rows, string when there is none.
func sampledType(rows [][]any, i int) string {
	for _, r := range rows {
		switch r[i].(type) {
		case int64:
			return store.TypeInteger
		case float64:
			return store.TypeNumber
		case string, []byte:
			return store.TypeString
		}
	}
	return store.TypeString
}
