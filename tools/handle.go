package tools

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/signalsmith/agent-server/audience"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// This file is the only one in package tools that holds a store.Warehouse
// and calls its methods (TestNoToolReachesTheUnboundWarehouse holds that
// line). Tools reach the warehouse through the *Warehouse on their Call,
// which the gate binds to the caller, so a tool cannot run a query without
// the caller's access filters, limits and concurrency caps, nor show rows
// without their PII levels applied.

// AccessFilterSource reads the access filters that apply to a principal:
// its groups' filters and, for an agent, its human's too
// (store.AccessFilters.AccessFiltersFor).
type AccessFilterSource interface {
	AccessFiltersFor(ctx context.Context, p store.Principal) ([]store.AccessFilter, error)
}

// Warehouses binds the warehouse to callers: the server makes one, and the
// gate binds a *Warehouse to every call after RBAC has allowed it.
type Warehouses struct {
	wh      store.Warehouse
	filters AccessFilterSource
	limits  store.QueryLimits
	queue   *QueryQueue
}

// NewWarehouses returns the binder of wh for callers: every query a bound
// handle runs has limits (the server's timeout and row cap; their Filters,
// Key and Human are the caller's), the caller's access filters read from
// filters, and passes queue (a queue with the default caps when nil).
func NewWarehouses(wh store.Warehouse, filters AccessFilterSource, limits store.QueryLimits, queue *QueryQueue) *Warehouses {
	if queue == nil {
		queue = NewQueryQueue(Concurrency{})
	}
	limits.Filters, limits.Key, limits.Human = nil, "", ""
	return &Warehouses{wh: wh, filters: filters, limits: limits, queue: queue}
}

// Bind returns the warehouse as p may use it. The access filters are read
// once, at the handle's first query, so a call that never queries the
// warehouse costs no read.
func (ws *Warehouses) Bind(p store.Principal) *Warehouse {
	if ws == nil {
		return nil
	}
	return &Warehouse{ws: ws, principal: p}
}

// Warehouse is the warehouse as one caller may use it, bound by the gate
// (Call.Warehouse): every query runs with the caller's access filters,
// the server's limits, and counts against the caller's key and human in
// the QueryQueue; previews select only the columns a preview may show and
// mask them. A nil *Warehouse refuses everything (fail closed). It is
// safe for concurrent use.
type Warehouse struct {
	ws        *Warehouses
	principal store.Principal

	mu      sync.Mutex
	bound   bool
	filters []store.AccessFilter
}

// errUnbound is what a call without a bound warehouse gets: it is a
// wiring defect, and the query does not run.
var errUnbound = errors.New("no warehouse bound to this call")

// limits returns the limits of a query for the caller: the server's, with
// the caller's access filters and the key and human the queue counts it
// against. An error means the filters are unknown: the query must not run
// (fail closed).
func (w *Warehouse) limits(ctx context.Context) (store.QueryLimits, error) {
	if w == nil {
		return store.QueryLimits{}, errUnbound
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.bound {
		filters, err := w.ws.filters.AccessFiltersFor(ctx, w.principal)
		if err != nil {
			return store.QueryLimits{}, fmt.Errorf("access filters of %s: %w", w.principal.MemberID, err)
		}
		w.filters, w.bound = filters, true
	}
	limits := w.ws.limits
	limits.Filters = w.filters
	limits.Key, limits.Human = w.principal.KeyID, w.principal.Human()
	return limits, nil
}

// query runs one statement within limits, admitted by the queue first.
func (w *Warehouse) query(ctx context.Context, limits store.QueryLimits, query string, args ...any) (store.Result, error) {
	release, err := w.ws.queue.acquire(ctx, limits.Key, limits.Human, limits.Timeout)
	if err != nil {
		return store.Result{}, err
	}
	defer release()
	return w.ws.wh.Query(ctx, limits, query, args...)
}

// Dialect is the warehouse's SQL dialect, for SQL built from typed
// definitions; nil for a nil handle.
func (w *Warehouse) Dialect() store.Dialect {
	if w == nil {
		return nil
	}
	return w.ws.wh.Dialect()
}

// Filtered reports whether the caller has access filters.
func (w *Warehouse) Filtered(ctx context.Context) (bool, error) {
	limits, err := w.limits(ctx)
	if err != nil {
		return false, err
	}
	return len(limits.Filters) > 0, nil
}

// Tables lists the tables the caller may read. A row count comes from the
// warehouse's statistics, over all rows: a table with an access filter for
// the caller shows none.
func (w *Warehouse) Tables(ctx context.Context) ([]store.Table, error) {
	limits, err := w.limits(ctx)
	if err != nil {
		return nil, err
	}
	tables, err := w.ws.wh.Tables(ctx)
	if err != nil {
		return nil, err
	}
	for i := range tables {
		for _, f := range limits.Filters {
			if strings.EqualFold(f.Table, tables[i].QualifiedName()) {
				tables[i].RowCount = nil
			}
		}
	}
	return tables, nil
}

// Describe returns a table with its columns (store.Warehouse.Describe);
// store.ErrNotFound when it does not exist or may not be read.
func (w *Warehouse) Describe(ctx context.Context, schema, name string) (store.Table, error) {
	if w == nil {
		return store.Table{}, errUnbound
	}
	return w.ws.wh.Describe(ctx, schema, name)
}

// CheckSQL checks a SQL model's query with the caller's limits and filters
// (store.Warehouse.CheckSQL) and returns its columns. A query the engine
// refuses or cannot compile, or one that ran out of time, is a *Error
// naming what to change.
func (w *Warehouse) CheckSQL(ctx context.Context, query string) ([]store.Column, error) {
	limits, err := w.limits(ctx)
	if err != nil {
		return nil, err
	}
	release, err := w.ws.queue.acquire(ctx, limits.Key, limits.Human, limits.Timeout)
	if err != nil {
		return nil, err
	}
	defer release()
	cols, err := w.ws.wh.CheckSQL(ctx, limits, query)
	if err != nil {
		return nil, queryError(err, limits, "the model's SQL")
	}
	return cols, nil
}

// Count counts a compiled audience's members exactly, of the rows the
// caller may see.
func (w *Warehouse) Count(ctx context.Context, q *audience.Query) (int64, error) {
	limits, err := w.limits(ctx)
	if err != nil {
		return 0, err
	}
	return w.count(ctx, limits, q)
}

// UnfilteredCount counts a compiled audience workspace-wide, without the
// caller's access filters (0 for nil: it selects nobody). It is for
// guardrail facts only, so that a caller who sees few rows cannot make a
// large audience look small: it returns an aggregate, never a row. The
// query still runs within the server's limits and counts against the
// caller's key and human, so facts cannot be used to flood the warehouse.
func (w *Warehouse) UnfilteredCount(ctx context.Context, q *audience.Query) (int64, error) {
	if q == nil {
		return 0, nil
	}
	limits, err := w.limits(ctx)
	if err != nil {
		return 0, err
	}
	limits.Filters = nil
	return w.count(ctx, limits, q)
}

// count runs q's count within limits.
func (w *Warehouse) count(ctx context.Context, limits store.QueryLimits, query *audience.Query) (int64, error) {
	q := query.Count()
	res, err := w.query(ctx, limits, q.SQL, q.Args...)
	if err != nil {
		if e := queryError(err, limits, "the audience count"); e != err {
			return 0, e
		}
		return 0, fmt.Errorf("count audience: %w", err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return 0, fmt.Errorf("count audience: %d rows", len(res.Rows))
	}
	n, ok := res.Rows[0][0].(int64)
	if !ok {
		return 0, fmt.Errorf("count audience: %T is not a count", res.Rows[0][0])
	}
	return n, nil
}

// PreviewSQLFunc builds the SQL of a preview: a query selecting exactly
// the given columns, in that order, of at most limit rows.
type PreviewSQLFunc func(columns []string, limit int) (query string, args []any, err error)

// Preview is a sample of rows as a caller may see it: only the columns a
// preview may show (guardrails.PreviewColumns), redacted values masked,
// within the caller's access filters, and bounded in size
// (maxPreviewBytes, maxPreviewValue).
type Preview struct {
	// Columns are the columns shown, Hidden the names of those left out.
	Columns []store.Column
	Hidden  []string
	Rows    []map[string]any
	// Truncated is true when the server's row cap cut the rows short,
	// Dropped when rows past the size bound were cut, ValuesCut how many
	// long values were cut.
	Truncated bool
	Dropped   bool
	ValuesCut int
	// Filtered is true when the caller has access filters.
	Filtered bool
}

// Preview samples up to limit rows over cols (a model's columns, with
// their PII levels): it selects the columns a preview may show with the
// SQL build gives, checks the result has exactly those columns, masks
// every value by its column's level and bounds the rows. With no column
// to show or a limit below 1 nothing runs and Rows is empty. what names
// the query in errors the model reads ("the preview of model customers").
func (w *Warehouse) Preview(ctx context.Context, cols []store.Column, limit int, what string, build PreviewSQLFunc) (Preview, error) {
	shown := guardrails.PreviewColumns(cols)
	p := Preview{Columns: shown, Hidden: []string{}, Rows: []map[string]any{}}
	names := make([]string, len(shown))
	for i, c := range shown {
		names[i] = c.Name
	}
	for _, c := range cols {
		if !slices.Contains(names, c.Name) {
			p.Hidden = append(p.Hidden, c.Name)
		}
	}
	limits, err := w.limits(ctx)
	if err != nil {
		return Preview{}, err
	}
	p.Filtered = len(limits.Filters) > 0
	if len(shown) == 0 || limit < 1 {
		return p, nil
	}
	query, args, err := build(names, limit)
	if err != nil {
		return Preview{}, err
	}
	if limits.MaxRows <= 0 || limit < limits.MaxRows {
		limits.MaxRows = limit // the server's row cap still applies
	}
	res, err := w.query(ctx, limits, query, args...)
	if err != nil {
		if e := queryError(err, limits, what); e != err {
			return Preview{}, e
		}
		return Preview{}, fmt.Errorf("%s: %w", what, err)
	}
	if len(res.Columns) != len(names) {
		// Masking goes by position: a query that selects anything else
		// must not show it.
		return Preview{}, fmt.Errorf("%s: selected %d columns, not the %d a preview may show", what, len(res.Columns), len(names))
	}
	for i, c := range res.Columns {
		if !strings.EqualFold(c, names[i]) {
			return Preview{}, fmt.Errorf("%s: column %d is %q, not %q", what, i, c, names[i])
		}
	}
	rows := make([]map[string]any, len(res.Rows))
	for i, r := range res.Rows {
		masked := guardrails.MaskPreview(shown, r)
		row := make(map[string]any, len(shown))
		for j, c := range shown {
			row[c.Name] = masked[j]
		}
		rows[i] = row
	}
	p.Rows, p.Dropped, p.ValuesCut, err = boundPreview(rows)
	if err != nil {
		return Preview{}, fmt.Errorf("%s: %w", what, err)
	}
	p.Truncated = res.Truncated
	return p, nil
}
