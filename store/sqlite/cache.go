package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// Caches under version counters.
//
// The one row of rbac_version holds three counters (migration 0017): auth
// (the column version: roles, members, groups, access filters, keys),
// catalog (models, audiences, destinations, syncs, PII classification) and
// settings (kill switch, policy set). Every change bumps its counter in its
// own transaction (bump), in this process or another. Every cached value is
// kept with the counter it was read at, and a read first reads the row (once
// per call scope, store.WithCallScope, with a prepared statement): a value
// whose counter moved is read again. A change committed by any process
// before a call begins therefore applies to that call, while unchanged
// state costs one point read and memory. PRAGMA data_version cannot serve:
// it moves with every commit of another connection, and every call commits
// an audit event.
//
// A value is read at or after the counter it is kept under (the counter is
// read first, or in the same statement), never before, so a cache can be
// newer than its counter but never older.

// counter names one column of the version row.
type counter string

const (
	authCounter     counter = "version"
	catalogCounter  counter = "catalog"
	settingsCounter counter = "settings"
)

// bump advances counter c inside the transaction that changed what it
// guards.
func bump(ctx context.Context, tx *sql.Tx, c counter) error {
	if _, err := tx.ExecContext(ctx, `UPDATE rbac_version SET `+string(c)+` = `+string(c)+` + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("bump %s version: %w", c, err)
	}
	return nil
}

// versions is one reading of the version row.
type versions struct{ auth, catalog, settings int64 }

// versions reads the version row, once per call scope.
func (d *DB) versions(ctx context.Context) (versions, error) {
	scope := store.ScopeOf(ctx)
	if v, ok := scope.Load(d); ok {
		return v.(versions), nil
	}
	var v versions
	if err := d.stmts.versions.QueryRowContext(ctx).Scan(&v.auth, &v.catalog, &v.settings); err != nil {
		return versions{}, fmt.Errorf("read versions: %w", err)
	}
	scope.Store(d, v)
	return v, nil
}

// statements are the hot reads, prepared once on the read pool: modernc
// reuses a compiled statement only inside a prepared *sql.Stmt, and
// database/sql keeps one per pooled connection.
// The audit trail's writes are prepared once on the writer (its one
// connection), and a transaction takes them with Tx.StmtContext, which
// reuses a statement already prepared on the transaction's connection.
type statements struct {
	versions      *sql.Stmt
	principal     *sql.Stmt
	keyByPrefix   *sql.Stmt
	accessFilters *sql.Stmt

	chainHead    *sql.Stmt
	insertAudit  *sql.Stmt
	insertOutbox *sql.Stmt
}

func prepareStatements(ctx context.Context, read, write *sql.DB) (*statements, error) {
	var s statements
	for _, p := range []struct {
		db    *sql.DB
		stmt  **sql.Stmt
		query string
	}{
		{read, &s.versions, `SELECT version, catalog, settings FROM rbac_version WHERE id = 1`},
		{read, &s.principal, selectPrincipal},
		{read, &s.keyByPrefix, `SELECT ` + keyColumns + ` WHERE k.prefix = ?`},
		{read, &s.accessFilters, selectAccessFiltersFor},
		{write, &s.chainHead, selectChainHead},
		{write, &s.insertAudit, insertAuditSQL},
		{write, &s.insertOutbox, insertOutboxSQL},
	} {
		stmt, err := p.db.PrepareContext(ctx, p.query)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		*p.stmt = stmt
	}
	return &s, nil
}

func (s *statements) close() error {
	var errs []error
	for _, stmt := range []*sql.Stmt{s.versions, s.principal, s.keyByPrefix, s.accessFilters, s.chainHead, s.insertAudit, s.insertOutbox} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	return errors.Join(errs...)
}

// maxCached bounds each cache; a full cache starts again empty, which
// costs reads, never correctness.
const maxCached = 10000

// memo maps keys to values each valid at one version of its counter.
type memo[T any] struct {
	mu sync.RWMutex
	m  map[string]memoEntry[T]
}

type memoEntry[T any] struct {
	version int64
	value   T
}

// get returns key's value when it was read at version.
func (c *memo[T]) get(key string, version int64) (T, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || e.version != version {
		var zero T
		return zero, false
	}
	return e.value, true
}

// put keeps value as key's at version, unless a newer one is kept already.
func (c *memo[T]) put(key string, version int64, value T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = make(map[string]memoEntry[T])
	}
	if e, ok := c.m[key]; ok && e.version > version {
		return
	}
	c.m[key] = memoEntry[T]{version: version, value: value}
}

// caches are the DB's caches; see the top of this file.
type caches struct {
	principals memo[*cachedPrincipal]
	filters    memo[[]store.AccessFilter]
	catalogs   memo[*catalog]
	settings   memo[settings]
}

// Principals.

// cachedPrincipal is an active key's principal as read at one auth
// version, with what Principal checks on every call.
type cachedPrincipal struct {
	p        store.Principal
	expires  *time.Time
	lastUsed *time.Time
	// noted is when this process last noted a use (Unix nanoseconds), so
	// most calls skip noteUse's lock.
	noted atomic.Int64
}

// selectPrincipal reads a key, its member, the member's groups and the auth
// version in one statement, so they are consistent.
const selectPrincipal = `SELECT k.id, k.prefix, k.expires_at, k.revoked_at, k.last_used_at,
		m.id, m.workspace_id, m.name, m.kind, m.role, COALESCE(m.owner_member_id, ''),
		(SELECT json_group_array(g.name) FROM group_members gm JOIN groups g ON g.id = gm.group_id WHERE gm.member_id = m.id),
		(SELECT version FROM rbac_version WHERE id = 1)
		FROM api_keys k JOIN members m ON m.id = k.member_id
		WHERE k.id = ?`

// loadPrincipal reads keyID's principal; a revoked key is ErrNotFound.
func (d *DB) loadPrincipal(ctx context.Context, keyID string) (*cachedPrincipal, error) {
	var p store.Principal
	var expires, revoked, used sql.NullTime
	var groups string
	err := d.stmts.principal.QueryRowContext(ctx, keyID).Scan(&p.KeyID, &p.KeyPrefix, &expires, &revoked, &used,
		&p.MemberID, &p.WorkspaceID, &p.MemberName, &p.Kind, &p.Role, &p.OwnerID, &groups, &p.RBACVersion)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("principal for key %q: %w", keyID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("principal for key %q: %w", keyID, err)
	}
	if revoked.Valid {
		return nil, fmt.Errorf("principal for key %q: key is revoked: %w", keyID, store.ErrNotFound)
	}
	if p.Groups, err = groupNames(groups); err != nil {
		return nil, fmt.Errorf("principal for key %q: %w", keyID, err)
	}
	return &cachedPrincipal{p: p, expires: timePtr(expires), lastUsed: timePtr(used)}, nil
}

// use returns the cached principal for a call at now: ErrNotFound once the
// key expired. It notes the use as Principal promises.
func (d *DB) use(c *cachedPrincipal, now time.Time) (store.Principal, error) {
	if c.expires != nil && !now.Before(*c.expires) {
		return store.Principal{}, fmt.Errorf("principal for key %q: key expired: %w", c.p.KeyID, store.ErrNotFound)
	}
	at := utc(now)
	if at.UnixNano()-c.noted.Load() >= int64(touchInterval) {
		c.noted.Store(at.UnixNano())
		d.noteUse(c.p.KeyID, c.lastUsed, at)
	}
	p := c.p
	p.Groups = slices.Clone(c.p.Groups)
	return p, nil
}

// Access filters.

// filtersKey is what AccessFiltersFor's answer depends on besides the store.
func filtersKey(p store.Principal) string {
	return strings.Join(append([]string{p.WorkspaceID, p.MemberID, p.OwnerID}, p.Groups...), "\x00")
}

func cloneFilters(fs []store.AccessFilter) []store.AccessFilter {
	out := slices.Clone(fs)
	for i := range out {
		if vs, ok := out[i].Value.([]any); ok {
			out[i].Value = slices.Clone(vs)
		}
	}
	return out
}

// Catalog.

// catalog is a workspace's models (effective PII levels applied under the
// classification of the same version) and audiences, decoded once per
// catalog version. Readers get copies.
type catalog struct {
	models      []store.Model // by name
	modelByID   map[string]int
	modelByName map[string]int
	audiences   []store.Audience // by name
	audienceIdx map[string]int
}

// catalog returns the workspace's catalog at the current catalog version.
func (d *DB) catalog(ctx context.Context, workspaceID string) (*catalog, error) {
	v, err := d.versions(ctx)
	if err != nil {
		return nil, err
	}
	if c, ok := d.cache.catalogs.get(workspaceID, v.catalog); ok {
		return c, nil
	}
	c, version, err := d.loadCatalog(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	d.cache.catalogs.put(workspaceID, version, c)
	return c, nil
}

// loadCatalog reads the workspace's catalog and its version in one read
// transaction, so they are consistent.
func (d *DB) loadCatalog(ctx context.Context, workspaceID string) (*catalog, int64, error) {
	tx, err := d.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("load catalog: %w", err)
	}
	defer tx.Rollback()
	var version int64
	if err := tx.QueryRowContext(ctx, `SELECT catalog FROM rbac_version WHERE id = 1`).Scan(&version); err != nil {
		return nil, 0, fmt.Errorf("load catalog: %w", err)
	}
	c := &catalog{modelByID: map[string]int{}, modelByName: map[string]int{}, audienceIdx: map[string]int{}}
	rows, err := tx.QueryContext(ctx, `SELECT `+modelColumns+` WHERE workspace_id = ? ORDER BY name`, workspaceID)
	if err != nil {
		return nil, 0, fmt.Errorf("load catalog: %w", err)
	}
	for rows.Next() {
		m, err := scanModel(rows)
		if err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("load catalog: %w", err)
		}
		c.modelByID[m.ID], c.modelByName[m.Name] = len(c.models), len(c.models)
		c.models = append(c.models, m)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, 0, fmt.Errorf("load catalog: %w", err)
	}
	levels, err := readPIILevels(ctx, tx, workspaceID)
	if err != nil {
		return nil, 0, fmt.Errorf("load catalog: %w", err)
	}
	for i := range c.models {
		store.ApplyPII(&c.models[i], levels)
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+audienceColumns+` WHERE workspace_id = ? ORDER BY name`, workspaceID)
	if err != nil {
		return nil, 0, fmt.Errorf("load catalog: %w", err)
	}
	for rows.Next() {
		a, err := scanAudience(rows)
		if err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("load catalog: %w", err)
		}
		c.audienceIdx[a.ID] = len(c.audiences)
		c.audiences = append(c.audiences, a)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, 0, fmt.Errorf("load catalog: %w", err)
	}
	return c, version, nil
}

// cloneModel is a deep copy, so a caller that edits a model it read (to
// update it, say) never changes the cache.
func cloneModel(m store.Model) store.Model {
	m.Columns = slices.Clone(m.Columns)
	for i := range m.Columns {
		m.Columns[i].Sources = slices.Clone(m.Columns[i].Sources)
		m.Columns[i].Guards = slices.Clone(m.Columns[i].Guards)
	}
	m.Relationships = slices.Clone(m.Relationships)
	return m
}

func cloneAudience(a store.Audience) store.Audience {
	a.Definition = slices.Clone(a.Definition)
	return a
}

// Settings.

// settings is a workspace's kill switch and active policy set at one
// settings version.
type settings struct {
	frozen bool
	// policy is the active stored policy set; nil when the shipped
	// defaults apply.
	policy *store.PolicySet
}

// settingsOf returns the workspace's settings at the current settings
// version; ErrNotFound for an unknown workspace (not cached: creating a
// workspace bumps no counter).
func (d *DB) settingsOf(ctx context.Context, workspaceID string) (settings, error) {
	v, err := d.versions(ctx)
	if err != nil {
		return settings{}, err
	}
	if s, ok := d.cache.settings.get(workspaceID, v.settings); ok {
		return s, nil
	}
	tx, err := d.read.BeginTx(ctx, nil)
	if err != nil {
		return settings{}, fmt.Errorf("workspace %s: read settings: %w", workspaceID, err)
	}
	defer tx.Rollback()
	var version int64
	var s settings
	err = tx.QueryRowContext(ctx, `SELECT w.ai_writes_frozen, (SELECT settings FROM rbac_version WHERE id = 1)
		FROM workspaces w WHERE w.id = ?`, workspaceID).Scan(&s.frozen, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return settings{}, fmt.Errorf("workspace %s: %w", workspaceID, store.ErrNotFound)
	}
	if err != nil {
		return settings{}, fmt.Errorf("workspace %s: read settings: %w", workspaceID, err)
	}
	var ps store.PolicySet
	err = tx.QueryRowContext(ctx, `SELECT version, source, applied_by, applied_at FROM policy_sets WHERE workspace_id = ? AND active = 1`,
		workspaceID).Scan(&ps.Version, &ps.Source, &ps.AppliedBy, &ps.AppliedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return settings{}, fmt.Errorf("workspace %s: read policy set: %w", workspaceID, err)
	default:
		s.policy = &ps
	}
	d.cache.settings.put(workspaceID, version, s)
	return s, nil
}
