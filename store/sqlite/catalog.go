package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// Destination categories and environments, and sync modes and states
// (DESIGN.md section 3). The schema's CHECK constraints hold the same lists.
var (
	destinationCategories   = []string{"advertising", "crm", "marketing", "analytics", "other"}
	destinationEnvironments = []string{"production", "sandbox"}
	syncModes               = []string{"upsert", "mirror", "append"}
	syncStates              = []string{"active", "paused"}
	piiLevels               = []string{"", store.PIINone, store.PIIRedacted, store.PIISyncOnly, store.PIIBlocked}
	lineages                = []string{"", store.LineageColumn, store.LineageExpression}
)

// destinationType is the form of a destination type ("webhook", "file").
var destinationType = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// stamp fills empty creation and update times.
func stamp(created, updated *time.Time) {
	if created.IsZero() {
		*created = time.Now()
	}
	*created = created.UTC()
	if updated.IsZero() {
		*updated = *created
	}
	*updated = updated.UTC()
}

// ensureID assigns a new id with prefix when id is empty.
func ensureID(id *string, prefix string) error {
	if *id != "" {
		return nil
	}
	v, err := newID(prefix)
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// created maps the error of a catalog INSERT: a taken id or name is
// ErrConflict.
func created(op, name string, err error) error {
	if isUnique(err) {
		return fmt.Errorf("%s %q: the name or id is already taken in the workspace: %w", op, name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	return nil
}

// notFound maps sql.ErrNoRows of a workspace-scoped read to ErrNotFound.
func notFound(op, id string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %q: %w", op, id, store.ErrNotFound)
	}
	return fmt.Errorf("%s %q: %w", op, id, err)
}

// exists reports whether table has a row with this id in the workspace.
// table is always a constant of this package.
func exists(ctx context.Context, q querier, table, workspaceID, id string) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM `+table+` WHERE workspace_id = ? AND id = ?`, workspaceID, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Models.

// encodeModel returns a model's columns and relationships as the JSON the
// models table stores.
func encodeModel(op string, m store.Model) (cols, rels []byte, err error) {
	stored := make([]storedColumn, len(m.Columns))
	for i, c := range m.Columns {
		stored[i] = storedColumn{Name: c.Name, Type: c.Type, Nullable: c.Nullable, Requested: c.Requested, Lineage: c.Lineage, Sources: c.Sources, Guards: c.Guards}
	}
	if cols, err = json.Marshal(stored); err != nil {
		return nil, nil, invalid(op, "columns", "cannot be encoded as JSON")
	}
	rels = []byte("[]")
	if len(m.Relationships) > 0 {
		if rels, err = json.Marshal(m.Relationships); err != nil {
			return nil, nil, invalid(op, "relationships", "cannot be encoded as JSON")
		}
	}
	return cols, rels, nil
}

// storedColumn is a model column as the models table stores it: the
// level its definition requests (under "pii", as columns were stored
// before lineage) and its lineage, never the effective level, which the
// store computes from the classification on every read (store.ApplyPII).
type storedColumn struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Nullable  bool     `json:"nullable"`
	Requested string   `json:"pii,omitempty"`
	Lineage   string   `json:"lineage,omitempty"`
	Sources   []string `json:"sources,omitempty"`
	Guards    []string `json:"guards,omitempty"`
}

// validateModel checks a model before it is written.
func validateModel(op string, m *store.Model) error {
	if m.WorkspaceID == "" {
		return invalid(op, "workspace_id", "is required")
	}
	if err := checkObjectName(op, "name", m.Name); err != nil {
		return err
	}
	switch {
	case m.Table == "" && m.SQL == "":
		return invalid(op, "table", "or sql is required")
	case m.Table != "" && m.SQL != "":
		return invalid(op, "table", "and sql exclude each other")
	case m.PrimaryKey == "":
		return invalid(op, "primary_key", "is required")
	case len(m.Columns) == 0:
		return invalid(op, "columns", "are required")
	}
	cols := make(map[string]bool, len(m.Columns))
	for i, c := range m.Columns {
		switch {
		case c.Name == "":
			return invalid(op, "columns", "[%d]: name is required", i)
		case cols[c.Name]:
			return invalid(op, "columns", "name %q twice", c.Name)
		case !oneOf(c.Requested, piiLevels):
			return invalid(op, "columns", "%q: pii %q is not none, redacted, sync_only or blocked", c.Name, c.Requested)
		case !oneOf(c.Lineage, lineages):
			return invalid(op, "columns", "%q: lineage %q is not column or expression", c.Name, c.Lineage)
		case c.Lineage == store.LineageColumn && len(c.Sources) != 1:
			return invalid(op, "columns", "%q: a column reference has exactly one source", c.Name)
		}
		cols[c.Name] = true
	}
	if !cols[m.PrimaryKey] {
		return invalid(op, "primary_key", "%q is not one of the columns", m.PrimaryKey)
	}
	rels := make(map[string]bool, len(m.Relationships))
	for i, r := range m.Relationships {
		switch {
		case r.Name == "" || r.Model == "" || r.ForeignKey == "" || r.References == "":
			return invalid(op, "relationships", "[%d]: name, model, foreign_key and references are required", i)
		case rels[r.Name]:
			return invalid(op, "relationships", "name %q twice", r.Name)
		}
		rels[r.Name] = true
	}
	return nil
}

// CreateModel stores a new model at version 1, assigning its id and
// timestamps when empty. It returns ErrInvalid for a missing or bad field (a name, exactly
// one of table and sql, columns with unique names and known PII levels, a
// primary key among them, complete relationships), ErrConflict for a name or
// id already taken and ErrNotFound for an unknown workspace.
func (d *DB) CreateModel(ctx context.Context, m store.Model) (store.Model, error) {
	const op = "create model"
	if err := validateModel(op, &m); err != nil {
		return store.Model{}, err
	}
	if err := ensureID(&m.ID, prefixModel); err != nil {
		return store.Model{}, err
	}
	stamp(&m.CreatedAt, &m.UpdatedAt)
	m.Version = 1
	cols, rels, err := encodeModel(op, m)
	if err != nil {
		return store.Model{}, err
	}
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		// Names the new object in the pending audit event of the call.
		store.NoteAuditResource(ctx, m.ID)
		if err := checkWorkspace(ctx, tx, op, m.WorkspaceID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO models (id, workspace_id, name, description, table_name, sql, primary_key,
			columns, relationships, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, m.WorkspaceID, m.Name, m.Description, m.Table, m.SQL, m.PrimaryKey, string(cols), string(rels),
			m.CreatedAt, m.UpdatedAt, m.Version)
		if err := created(op, m.Name, err); err != nil {
			return err
		}
		return bump(ctx, tx, catalogCounter)
	})
	if err != nil {
		return store.Model{}, err
	}
	return m, d.applyPII(ctx, &m)
}

// applyPII gives m's columns their effective PII levels under the
// workspace's classification (store.ApplyPII).
func (d *DB) applyPII(ctx context.Context, models ...*store.Model) error {
	if len(models) == 0 {
		return nil
	}
	levels, err := readPIILevels(ctx, d.read, models[0].WorkspaceID)
	if err != nil {
		return err
	}
	for _, m := range models {
		store.ApplyPII(m, levels)
	}
	return nil
}

const modelColumns = `id, workspace_id, name, description, table_name, sql, primary_key, columns, relationships,
	created_at, updated_at, version FROM models`

func scanModel(s interface{ Scan(...any) error }) (store.Model, error) {
	var m store.Model
	var cols, rels string
	if err := s.Scan(&m.ID, &m.WorkspaceID, &m.Name, &m.Description, &m.Table, &m.SQL, &m.PrimaryKey, &cols, &rels,
		&m.CreatedAt, &m.UpdatedAt, &m.Version); err != nil {
		return store.Model{}, err
	}
	var stored []storedColumn
	if err := json.Unmarshal([]byte(cols), &stored); err != nil {
		return store.Model{}, fmt.Errorf("decode columns: %w", err)
	}
	m.Columns = make([]store.Column, len(stored))
	for i, c := range stored {
		m.Columns[i] = store.Column{Name: c.Name, Type: c.Type, Nullable: c.Nullable, Requested: c.Requested, Lineage: c.Lineage, Sources: c.Sources, Guards: c.Guards}
	}
	if err := json.Unmarshal([]byte(rels), &m.Relationships); err != nil {
		return store.Model{}, fmt.Errorf("decode relationships: %w", err)
	}
	if len(m.Relationships) == 0 {
		m.Relationships = nil
	}
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	return m, nil
}

// ListModels lists a workspace's models by name, from the catalog cache
// (decoded once per catalog version).
func (d *DB) ListModels(ctx context.Context, workspaceID string) ([]store.Model, error) {
	c, err := d.catalog(ctx, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	var out []store.Model
	for _, m := range c.models {
		out = append(out, cloneModel(m))
	}
	return out, nil
}

// GetModel returns a workspace's model by id when idOrName has the form of
// a model id (store.IsModelID), else by name; never by the other, so a
// model named like another model's id can never stand in for it. It
// returns ErrNotFound when the workspace has no such model. It reads the
// catalog cache, as ListModels.
func (d *DB) GetModel(ctx context.Context, workspaceID, idOrName string) (store.Model, error) {
	c, err := d.catalog(ctx, workspaceID)
	if err != nil {
		return store.Model{}, fmt.Errorf("get model %q: %w", idOrName, err)
	}
	index := c.modelByName
	if store.IsModelID(idOrName) {
		index = c.modelByID
	}
	i, ok := index[idOrName]
	if !ok {
		return store.Model{}, fmt.Errorf("get model %q: %w", idOrName, store.ErrNotFound)
	}
	return cloneModel(c.models[i]), nil
}

// Audiences.

// CreateAudience stores a new audience at version 1 (or the version given)
// and records that definition in its history, assigning its id and
// timestamps when empty. It returns ErrInvalid for a missing name, a model
// id the workspace lacks or a definition that is not JSON, ErrConflict for a
// name or id already taken and ErrNotFound for an unknown workspace.
func (d *DB) CreateAudience(ctx context.Context, a store.Audience) (store.Audience, error) {
	const op = "create audience"
	switch {
	case a.WorkspaceID == "":
		return store.Audience{}, invalid(op, "workspace_id", "is required")
	case a.ModelID == "":
		return store.Audience{}, invalid(op, "model_id", "is required")
	case len(a.Definition) == 0:
		return store.Audience{}, invalid(op, "definition", "is required")
	case !json.Valid(a.Definition):
		return store.Audience{}, invalid(op, "definition", "is not valid JSON")
	case a.Version < 0:
		return store.Audience{}, invalid(op, "version", "must be positive")
	}
	if err := checkObjectName(op, "name", a.Name); err != nil {
		return store.Audience{}, err
	}
	if a.Version == 0 {
		a.Version = 1
	}
	if err := ensureID(&a.ID, prefixAudience); err != nil {
		return store.Audience{}, err
	}
	stamp(&a.CreatedAt, &a.UpdatedAt)
	a.Definition = append([]byte(nil), a.Definition...)
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		// Names the new object in the pending audit event of the call.
		store.NoteAuditResource(ctx, a.ID)
		if err := checkWorkspace(ctx, tx, op, a.WorkspaceID); err != nil {
			return err
		}
		ok, err := exists(ctx, tx, "models", a.WorkspaceID, a.ModelID)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, a.Name, err)
		}
		if !ok {
			return invalid(op, "model_id", "%q is not a model of the workspace", a.ModelID)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO audiences (id, workspace_id, name, description, model_id, definition,
			version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.WorkspaceID, a.Name, a.Description, a.ModelID, string(a.Definition), a.Version, a.CreatedAt, a.UpdatedAt)
		if err := created(op, a.Name, err); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO audience_versions (audience_id, version, definition, created_at)
			VALUES (?, ?, ?, ?)`, a.ID, a.Version, string(a.Definition), a.UpdatedAt)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, a.Name, err)
		}
		return bump(ctx, tx, catalogCounter)
	})
	if err != nil {
		return store.Audience{}, err
	}
	return a, nil
}

const audienceColumns = `id, workspace_id, name, description, model_id, definition, version, created_at, updated_at FROM audiences`

func scanAudience(s interface{ Scan(...any) error }) (store.Audience, error) {
	var a store.Audience
	var def string
	if err := s.Scan(&a.ID, &a.WorkspaceID, &a.Name, &a.Description, &a.ModelID, &def, &a.Version,
		&a.CreatedAt, &a.UpdatedAt); err != nil {
		return store.Audience{}, err
	}
	a.Definition = []byte(def)
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, nil
}

// ListAudiences lists a workspace's audiences by name, from the catalog
// cache.
func (d *DB) ListAudiences(ctx context.Context, workspaceID string) ([]store.Audience, error) {
	c, err := d.catalog(ctx, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list audiences: %w", err)
	}
	var out []store.Audience
	for _, a := range c.audiences {
		out = append(out, cloneAudience(a))
	}
	return out, nil
}

// GetAudience returns a workspace's audience by id; ErrNotFound when the
// workspace has none with that id. It reads the catalog cache.
func (d *DB) GetAudience(ctx context.Context, workspaceID, id string) (store.Audience, error) {
	c, err := d.catalog(ctx, workspaceID)
	if err != nil {
		return store.Audience{}, fmt.Errorf("get audience %q: %w", id, err)
	}
	i, ok := c.audienceIdx[id]
	if !ok {
		return store.Audience{}, fmt.Errorf("get audience %q: %w", id, store.ErrNotFound)
	}
	return cloneAudience(c.audiences[i]), nil
}

// Destinations.

// CreateDestination stores a new destination, assigning its id and
// timestamp when empty. Credentials are not set here (HasCredentials is
// false on return). It returns ErrInvalid for a missing name, a bad type, an
// unknown category or environment or a config that is not encodable as
// JSON, ErrConflict for a name or id already taken and ErrNotFound for an
// unknown workspace.
func (d *DB) CreateDestination(ctx context.Context, dst store.Destination) (store.Destination, error) {
	return d.CreateSealedDestination(ctx, dst, store.Credential{})
}

// CreateSealedDestination is CreateDestination with the destination's
// sealed credential stored in the same transaction; a zero Credential
// stores none, and a credential without its key id (or the reverse) is
// ErrInvalid.
func (d *DB) CreateSealedDestination(ctx context.Context, dst store.Destination, c store.Credential) (store.Destination, error) {
	const op = "create destination"
	if dst.WorkspaceID == "" {
		return store.Destination{}, invalid(op, "workspace_id", "is required")
	}
	if err := checkDestination(op, dst, &c); err != nil {
		return store.Destination{}, err
	}
	if dst.Config == nil {
		dst.Config = map[string]any{}
	}
	cfg, err := json.Marshal(dst.Config)
	if err != nil {
		return store.Destination{}, invalid(op, "config", "cannot be encoded as JSON")
	}
	if err := ensureID(&dst.ID, prefixDestination); err != nil {
		return store.Destination{}, err
	}
	var updated time.Time
	stamp(&dst.CreatedAt, &updated)
	dst.HasCredentials = c.Sealed != nil
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		// Names the new object in the pending audit event of the call.
		store.NoteAuditResource(ctx, dst.ID)
		if err := checkWorkspace(ctx, tx, op, dst.WorkspaceID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO destinations (id, workspace_id, name, type, category, environment,
			config, credentials, credentials_key_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			dst.ID, dst.WorkspaceID, dst.Name, dst.Type, dst.Category, dst.Environment, string(cfg),
			sealedValue(c), nullString(c.KeyID), dst.CreatedAt, updated)
		if err := created(op, dst.Name, err); err != nil {
			return err
		}
		return bump(ctx, tx, catalogCounter)
	})
	if err != nil {
		return store.Destination{}, err
	}
	// Return the config as it reads back, so callers see what is stored.
	var cfgCopy map[string]any
	if err := json.Unmarshal(cfg, &cfgCopy); err != nil {
		return store.Destination{}, fmt.Errorf("%s %q: decode config: %w", op, dst.Name, err)
	}
	dst.Config = cfgCopy
	return dst, nil
}

// checkDestination checks the fields every destination write checks, and
// fills an empty config.
func checkDestination(op string, dst store.Destination, c *store.Credential) error {
	if err := checkObjectName(op, "name", dst.Name); err != nil {
		return err
	}
	if c != nil && (len(c.Sealed) == 0) != (c.KeyID == "") {
		return invalid(op, "credentials", "need both the sealed value and its key id")
	}
	switch {
	case dst.Type == "":
		return invalid(op, "type", "is required")
	case !destinationType.MatchString(dst.Type):
		return invalid(op, "type", "%q must be lowercase letters, digits and '_'", dst.Type)
	case !oneOf(dst.Category, destinationCategories):
		return invalid(op, "category", "%q is not advertising, crm, marketing, analytics or other", dst.Category)
	case !oneOf(dst.Environment, destinationEnvironments):
		return invalid(op, "environment", "%q is not production or sandbox", dst.Environment)
	}
	return nil
}

const destinationColumns = `id, workspace_id, name, type, category, environment, config, credentials IS NOT NULL,
	created_at FROM destinations`

func scanDestination(s interface{ Scan(...any) error }) (store.Destination, error) {
	var dst store.Destination
	var cfg string
	if err := s.Scan(&dst.ID, &dst.WorkspaceID, &dst.Name, &dst.Type, &dst.Category, &dst.Environment, &cfg,
		&dst.HasCredentials, &dst.CreatedAt); err != nil {
		return store.Destination{}, err
	}
	if err := json.Unmarshal([]byte(cfg), &dst.Config); err != nil {
		return store.Destination{}, fmt.Errorf("decode config: %w", err)
	}
	dst.CreatedAt = dst.CreatedAt.UTC()
	return dst, nil
}

// ListDestinations lists a workspace's destinations by name.
func (d *DB) ListDestinations(ctx context.Context, workspaceID string) ([]store.Destination, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+destinationColumns+` WHERE workspace_id = ? ORDER BY name`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list destinations: %w", err)
	}
	defer rows.Close()
	var out []store.Destination
	for rows.Next() {
		dst, err := scanDestination(rows)
		if err != nil {
			return nil, fmt.Errorf("list destinations: %w", err)
		}
		out = append(out, dst)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list destinations: %w", err)
	}
	return out, nil
}

// GetDestination returns a workspace's destination by id; ErrNotFound when
// the workspace has none with that id.
func (d *DB) GetDestination(ctx context.Context, workspaceID, id string) (store.Destination, error) {
	dst, err := scanDestination(d.read.QueryRowContext(ctx, `SELECT `+destinationColumns+` WHERE workspace_id = ? AND id = ?`,
		workspaceID, id))
	if err != nil {
		return store.Destination{}, notFound("get destination", id, err)
	}
	return dst, nil
}

// Syncs.

// CreateSync stores a new sync, assigning its id and timestamps when empty
// and the state "active" when none is given. It returns ErrInvalid for an
// audience, destination or owner the workspace lacks, an unknown mode or
// state, or an incomplete field mapping; ErrConflict for an id already taken and
// ErrNotFound for an unknown workspace.
func (d *DB) CreateSync(ctx context.Context, s store.Sync) (store.Sync, error) {
	const op = "create sync"
	if s.State == "" {
		s.State = "active"
	}
	maps, err := checkSync(op, &s)
	if err != nil {
		return store.Sync{}, err
	}
	if err := ensureID(&s.ID, prefixSync); err != nil {
		return store.Sync{}, err
	}
	stamp(&s.CreatedAt, &s.UpdatedAt)
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		// Names the new object in the pending audit event of the call.
		store.NoteAuditResource(ctx, s.ID)
		if err := checkWorkspace(ctx, tx, op, s.WorkspaceID); err != nil {
			return err
		}
		if err := checkSyncRefs(ctx, tx, op, s); err != nil {
			return err
		}
		if s.OwnerID != "" {
			ok, err := exists(ctx, tx, "members", s.WorkspaceID, s.OwnerID)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			if !ok {
				return invalid(op, "owner_id", "%q is not a member of the workspace", s.OwnerID)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO syncs (id, workspace_id, audience_id, destination_id, mode, schedule,
			state, mappings, owner_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.WorkspaceID, s.AudienceID, s.DestinationID, s.Mode, s.Schedule, s.State, maps,
			s.OwnerID, s.CreatedAt, s.UpdatedAt)
		if err := created(op, s.ID, err); err != nil {
			return err
		}
		return bump(ctx, tx, catalogCounter)
	})
	if err != nil {
		return store.Sync{}, err
	}
	return s, nil
}

// checkSync checks the fields of a sync CreateSync or UpdateSync stores
// and returns its mappings as JSON.
func checkSync(op string, s *store.Sync) (string, error) {
	switch {
	case s.WorkspaceID == "":
		return "", invalid(op, "workspace_id", "is required")
	case s.AudienceID == "":
		return "", invalid(op, "audience_id", "is required")
	case s.DestinationID == "":
		return "", invalid(op, "destination_id", "is required")
	case !oneOf(s.Mode, syncModes):
		return "", invalid(op, "mode", "%q is not upsert, mirror or append", s.Mode)
	case !oneOf(s.State, syncStates):
		return "", invalid(op, "state", "%q is not active or paused", s.State)
	case len(s.Schedule) > 200:
		return "", invalid(op, "schedule", "is longer than 200 bytes")
	}
	for i, fm := range s.Mappings {
		if fm.From == "" || fm.To == "" {
			return "", invalid(op, "mappings", "[%d]: from and to are required", i)
		}
		if fm.Transform != "" && fm.Transform != store.TransformSHA256 && fm.Transform != store.TransformDrop {
			return "", invalid(op, "mappings", "[%d]: transform %q is not sha256 or drop", i, fm.Transform)
		}
	}
	if s.Mappings == nil {
		s.Mappings = []store.FieldMapping{}
	}
	maps, err := json.Marshal(s.Mappings)
	if err != nil {
		return "", invalid(op, "mappings", "cannot be encoded as JSON")
	}
	return string(maps), nil
}

// checkSyncRefs checks that the sync's audience and destination are the
// workspace's.
func checkSyncRefs(ctx context.Context, tx *sql.Tx, op string, s store.Sync) error {
	ok, err := exists(ctx, tx, "audiences", s.WorkspaceID, s.AudienceID)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !ok {
		return invalid(op, "audience_id", "%q is not an audience of the workspace", s.AudienceID)
	}
	ok, err = exists(ctx, tx, "destinations", s.WorkspaceID, s.DestinationID)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !ok {
		return invalid(op, "destination_id", "%q is not a destination of the workspace", s.DestinationID)
	}
	return nil
}

// UpdateSync replaces a sync's audience, destination, mode, schedule,
// state and mappings; its owner and creation time stay as stored.
func (d *DB) UpdateSync(ctx context.Context, s store.Sync) (store.Sync, error) {
	const op = "update sync"
	maps, err := checkSync(op, &s)
	if err != nil {
		return store.Sync{}, err
	}
	var out store.Sync
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanSync(tx.QueryRowContext(ctx, `SELECT `+syncColumns+` WHERE workspace_id = ? AND id = ?`, s.WorkspaceID, s.ID))
		if err != nil {
			return notFound(op, s.ID, err)
		}
		if err := checkSyncRefs(ctx, tx, op, s); err != nil {
			return err
		}
		s.OwnerID, s.CreatedAt, s.UpdatedAt = cur.OwnerID, cur.CreatedAt, time.Now().UTC()
		if _, err := tx.ExecContext(ctx, `UPDATE syncs SET audience_id = ?, destination_id = ?, mode = ?, schedule = ?,
			state = ?, mappings = ?, updated_at = ? WHERE workspace_id = ? AND id = ?`,
			s.AudienceID, s.DestinationID, s.Mode, s.Schedule, s.State, maps, s.UpdatedAt, s.WorkspaceID, s.ID); err != nil {
			return fmt.Errorf("%s %s: %w", op, s.ID, err)
		}
		out = s
		return bump(ctx, tx, catalogCounter)
	})
	if err != nil {
		return store.Sync{}, err
	}
	return out, nil
}

// DeleteSync deletes a sync; its runs and lease go with it (foreign keys
// with ON DELETE CASCADE).
func (d *DB) DeleteSync(ctx context.Context, workspaceID, id string) error {
	const op = "delete sync"
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM syncs WHERE workspace_id = ? AND id = ?`, workspaceID, id)
		if err != nil {
			return fmt.Errorf("%s %s: %w", op, id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("%s %s: %w", op, id, err)
		} else if n == 0 {
			return fmt.Errorf("%s %q: %w", op, id, store.ErrNotFound)
		}
		return bump(ctx, tx, catalogCounter)
	})
}

const syncColumns = `id, workspace_id, audience_id, destination_id, mode, schedule, state, mappings, owner_id,
	created_at, updated_at FROM syncs`

func scanSync(r interface{ Scan(...any) error }) (store.Sync, error) {
	var s store.Sync
	var maps string
	if err := r.Scan(&s.ID, &s.WorkspaceID, &s.AudienceID, &s.DestinationID, &s.Mode, &s.Schedule, &s.State, &maps,
		&s.OwnerID, &s.CreatedAt, &s.UpdatedAt); err != nil {
		return store.Sync{}, err
	}
	if err := json.Unmarshal([]byte(maps), &s.Mappings); err != nil {
		return store.Sync{}, fmt.Errorf("decode mappings: %w", err)
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, nil
}

// ListSyncs lists a workspace's syncs, oldest first.
func (d *DB) ListSyncs(ctx context.Context, workspaceID string) ([]store.Sync, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+syncColumns+` WHERE workspace_id = ? ORDER BY created_at, id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	defer rows.Close()
	var out []store.Sync
	for rows.Next() {
		s, err := scanSync(rows)
		if err != nil {
			return nil, fmt.Errorf("list syncs: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	return out, nil
}

// GetSync returns a workspace's sync by id; ErrNotFound when the workspace
// has none with that id.
func (d *DB) GetSync(ctx context.Context, workspaceID, id string) (store.Sync, error) {
	s, err := scanSync(d.read.QueryRowContext(ctx, `SELECT `+syncColumns+` WHERE workspace_id = ? AND id = ?`,
		workspaceID, id))
	if err != nil {
		return store.Sync{}, notFound("get sync", id, err)
	}
	return s, nil
}
