package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every Store and Warehouse implementation. Callers check
// them with errors.Is; implementations wrap them with context.
var (
	// ErrNotFound means the object does not exist in the caller's workspace.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the object exists already or its state forbids the change.
	ErrConflict = errors.New("conflict")
	// ErrInvalid means the input was rejected before anything was written.
	ErrInvalid = errors.New("invalid input")
)

// Workspace is a tenant. Every other object belongs to exactly one.
type Workspace struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Principal kinds: a human or an agent.
const (
	KindUser  = "user"
	KindAgent = "agent"
)

// Member is a human or agent principal with exactly one role in its workspace.
type Member struct {
	ID          string `json:"id"`
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Role        string `json:"role"`
	// OwnerID is the human member an agent acts for; empty for users.
	OwnerID string `json:"owner_id,omitempty"`
	// Email identifies the person behind a user member: one member per
	// person and workspace. It is stored lowercased; empty for agents and
	// for users created before emails were recorded.
	Email     string    `json:"email,omitempty"`
	Groups    []string  `json:"groups,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Role is a named set of permissions in a workspace.
type Role struct {
	WorkspaceID string   `json:"workspace_id"`
	Name        string   `json:"name"`
	BuiltIn     bool     `json:"built_in"`
	Permissions []string `json:"permissions"`
}

// Key is an API key record. The secret is never stored: Hash is its bcrypt
// hash, and Prefix (the public lookup part) is what people see.
type Key struct {
	ID          string     `json:"id"`
	WorkspaceID string     `json:"workspace_id"`
	MemberID    string     `json:"member_id"`
	MemberName  string     `json:"member_name"`
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	Role        string     `json:"role"`
	Prefix      string     `json:"prefix"`
	Hash        []byte     `json:"-"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
}

// Active reports whether the key may authenticate at time now.
func (k *Key) Active(now time.Time) bool {
	if k.RevokedAt != nil {
		return false
	}
	return k.ExpiresAt == nil || now.Before(*k.ExpiresAt)
}

// NewKey is what a Store needs to create a key: the member it authenticates
// (created when absent) and the already hashed secret.
type NewKey struct {
	WorkspaceID string
	MemberName  string
	Kind        string
	Role        string
	// OwnerName is the user member an agent key acts for; required for
	// agent keys.
	OwnerName string
	// Email identifies the person behind a new user member; required when
	// the member is created, unique per workspace regardless of case.
	Email     string
	Name      string
	Prefix    string
	Hash      []byte
	ExpiresAt *time.Time
}

// Principal is the authenticated caller of one request, as the gate sees it.
type Principal struct {
	WorkspaceID string   `json:"workspace_id"`
	MemberID    string   `json:"member_id"`
	MemberName  string   `json:"member_name"`
	Kind        string   `json:"kind"`
	Role        string   `json:"role"`
	OwnerID     string   `json:"owner_id,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	KeyID       string   `json:"key_id"`
	KeyPrefix   string   `json:"key_prefix"`
	// RBACVersion is the store's RBACVersion when the principal was read.
	RBACVersion int64 `json:"-"`
}

// Human is the member id of the person behind the principal, whose budgets
// (rate limits, warehouse query slots) every key of theirs shares: an
// agent's owner, a user itself. An agent without an owner counts as its own
// human. It is empty only for a principal without a member.
func (p Principal) Human() string {
	if p.Kind == KindAgent && p.OwnerID != "" {
		return p.OwnerID
	}
	return p.MemberID
}

// PII levels of a model column (DESIGN.md section 3).
const (
	PIINone     = "none"
	PIIRedacted = "redacted"
	PIISyncOnly = "sync_only"
	PIIBlocked  = "blocked"
)

// Column is one column of a warehouse table or a model.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
	// PII is the column's level. For a model column read from a Store it
	// is the effective level (ApplyPII): the strictest of Requested and
	// the levels humans gave its Sources. For a warehouse table's column
	// it is the column's classification.
	PII string `json:"pii,omitempty"`
	// Requested is the level a model's definition asks for, which can only
	// make the column stricter; empty asks for nothing.
	Requested string `json:"requested_pii,omitempty"`
	// Lineage is LineageColumn or LineageExpression for a model column
	// whose sources the engine traced; empty for a warehouse column and
	// for model columns saved before lineage was recorded.
	Lineage string `json:"lineage,omitempty"`
	// Sources are the warehouse columns ("schema.table.column") the
	// model column's values come from.
	Sources []string `json:"sources,omitempty"`
	// Guards are the warehouse columns a SQL model reads besides the
	// plain column's own source, which may choose the rows it has (WHERE,
	// joins, grouping, ordering): when one of them is blocked, so is the
	// column.
	Guards []string `json:"guards,omitempty"`
}

// Relationship links a model to another through a foreign key.
type Relationship struct {
	Name       string `json:"name"`
	Model      string `json:"model"`
	ForeignKey string `json:"foreign_key"`
	References string `json:"references"`
}

// Model is a named table or SQL query over the warehouse.
type Model struct {
	ID            string         `json:"id"`
	WorkspaceID   string         `json:"workspace_id"`
	Name          string         `json:"name"`
	Description   string         `json:"description,omitempty"`
	Table         string         `json:"table,omitempty"`
	SQL           string         `json:"sql,omitempty"`
	PrimaryKey    string         `json:"primary_key"`
	Columns       []Column       `json:"columns"`
	Relationships []Relationship `json:"relationships,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`

	// Version is 1 when the model is created and grows by one with every
	// update (a new name included), so an approval can pin the model it
	// was reviewed with.
	Version int `json:"version"`
}

// Audience is a filter over a parent model. Definition is its JSON definition.
type Audience struct {
	ID          string    `json:"id"`
	WorkspaceID string    `json:"workspace_id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	ModelID     string    `json:"model_id"`
	Definition  []byte    `json:"definition"`
	Version     int       `json:"version"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Destination is where audiences are sent. Its credentials never leave the
// store in clear: Destination carries only whether it has any.
type Destination struct {
	ID             string         `json:"id"`
	WorkspaceID    string         `json:"workspace_id"`
	Name           string         `json:"name"`
	Type           string         `json:"type"`
	Category       string         `json:"category"`
	Environment    string         `json:"environment"`
	Config         map[string]any `json:"config"`
	HasCredentials bool           `json:"has_credentials"`
	CreatedAt      time.Time      `json:"created_at"`
}

// FieldMapping maps a model column to a destination field, with an
// optional transform the sync asks for on top of what governance imposes:
// "sha256" (the hex SHA-256 of the trimmed, lowercased value) or "drop"
// (the column is not sent); "" sends the value as governance lets it
// leave.
type FieldMapping struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Transform string `json:"transform,omitempty"`
}

// Transforms a FieldMapping may ask for.
const (
	TransformSHA256 = "sha256"
	TransformDrop   = "drop"
)

// Sync sends an audience to a destination.
type Sync struct {
	ID            string         `json:"id"`
	WorkspaceID   string         `json:"workspace_id"`
	AudienceID    string         `json:"audience_id"`
	DestinationID string         `json:"destination_id"`
	Mode          string         `json:"mode"`
	Schedule      string         `json:"schedule"`
	State         string         `json:"state"`
	Mappings      []FieldMapping `json:"mappings"`
	// OwnerID is the member who created the sync. Its runs read the
	// audience with that member's access filters, so a sync never sends
	// rows its owner could not see; a sync without an owner never runs.
	OwnerID   string    `json:"owner_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Sources of a call (DESIGN.md section 3).
const (
	SourceAI     = "AI"
	SourceAPI    = "API"
	SourceUI     = "UI"
	SourceCLI    = "CLI"
	SourceSystem = "SYSTEM"
)

// Audit decisions (DESIGN.md section 8).
const (
	DecisionAllowed          = "allowed"
	DecisionDenied           = "denied"
	DecisionApprovalRequired = "approval_required"
	DecisionExecuted         = "executed"
	DecisionFailed           = "failed"
)

// AuditEvent is one record of one operation (DESIGN.md section 8).
type AuditEvent struct {
	ID           string         `json:"id"`
	At           time.Time      `json:"at"`
	WorkspaceID  string         `json:"workspace"`
	ActorType    string         `json:"actor_type"`
	ActorID      string         `json:"actor_id"`
	ActorName    string         `json:"actor_name,omitempty"`
	KeyPrefix    string         `json:"key_prefix,omitempty"`
	Source       string         `json:"source"`
	Action       string         `json:"action"`
	Tool         string         `json:"tool,omitempty"`
	ResourceType string         `json:"resource_type,omitempty"`
	ResourceID   string         `json:"resource_id,omitempty"`
	Decision     string         `json:"decision"`
	Rules        []string       `json:"rules,omitempty"`
	Reason       string         `json:"reason,omitempty"`
	ApprovalID   string         `json:"approval_id,omitempty"`
	Args         map[string]any `json:"args,omitempty"`
	Result       string         `json:"result,omitempty"`
	LatencyMS    float64        `json:"latency_ms"`
	Client       string         `json:"client,omitempty"`
	SessionID    string         `json:"session_id,omitempty"`
	RequestID    string         `json:"request_id,omitempty"`
	// Seq is the event's place in the store's hash chain: 1, 2, 3, ... in
	// the order events were committed. The store assigns it, with PrevHash
	// and Hash (see AuditHash), in the transaction that records the event.
	Seq      int64  `json:"seq"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// AuditFilter selects audit events: newest first, or oldest first (by
// Seq) with Oldest. Empty fields select everything.
type AuditFilter struct {
	WorkspaceID string
	// Actor matches the actor's id or name, or the key prefix.
	Actor    string
	Source   string
	Tool     string
	Decision string
	// Since and Until bound the event time: Since <= at < Until.
	Since time.Time
	Until time.Time
	// AfterSeq selects events later in the chain than this one, for paging
	// oldest first.
	AfterSeq int64
	// Hash selects the event with this hash (for naming a broken link).
	Hash string
	// Oldest orders by Seq ascending instead of newest first.
	Oldest bool
	Limit  int
}

// Store is the server's metadata store: every interface below, which
// store/sqlite.DB implements, and Close. Only the wiring (the command line,
// server.Config, tests) holds a whole Store; each consumer takes the
// interface, or the few methods, it needs. Methods scoped to a workspace
// return ErrNotFound for objects of other workspaces.
type Store interface {
	Workspaces
	Keys
	RBAC
	Catalog
	Destinations
	PIIClassification
	RateLimits
	KillSwitch
	Approvals
	AccessFilters
	PolicySets
	AuditLog
	SyncRuns
	DestinationFilters

	Close() error
}

// Workspaces holds the tenants and their built-in roles.
type Workspaces interface {
	// EnsureWorkspace returns the workspace with this name, creating it when
	// absent, and makes its built-in roles exactly builtIn (so a new release's
	// permission table applies to existing workspaces).
	EnsureWorkspace(ctx context.Context, name string, builtIn []Role) (Workspace, error)
}

// Keys holds API keys and answers who is behind one: the command line
// manages keys, the server authenticates with KeyByPrefix and Principal.
type Keys interface {
	// CreateKey stores a key (finding or creating its member). It returns
	// ErrInvalid for an unknown role or kind, an agent key without an owner
	// that is a user member, or a new user member without an email; and
	// ErrConflict when the member exists with another role, kind or owner,
	// or the email belongs to another member.
	CreateKey(ctx context.Context, k NewKey) (Key, error)
	// KeyByPrefix returns the key with this lookup prefix, including revoked
	// and expired ones, with its hash.
	KeyByPrefix(ctx context.Context, prefix string) (Key, error)
	// Principal returns the current principal behind an active key, checked
	// on every call so revocation, expiry and role changes apply at once (a
	// store may cache it only under a version that every such change
	// bumps). It returns ErrNotFound for a key that is unknown, revoked or
	// expired.
	Principal(ctx context.Context, keyID string, now time.Time) (Principal, error)
	// ListKeys lists the keys of a workspace, newest first.
	ListKeys(ctx context.Context, workspaceID string) ([]Key, error)
	// RevokeKey revokes a key by id or prefix; revoking twice is ErrConflict.
	RevokeKey(ctx context.Context, workspaceID, idOrPrefix string, now time.Time) (Key, error)
	// ReplaceKey revokes old and creates its successor in one transaction.
	ReplaceKey(ctx context.Context, workspaceID, idOrPrefix string, prefix string, hash []byte, now time.Time) (Key, error)
}

// RBAC holds roles and memberships, what guardrails.RBAC loads (its Source
// is the read side), with the version that says when to reload.
type RBAC interface {
	// Roles lists a workspace's roles with their permissions.
	Roles(ctx context.Context, workspaceID string) ([]Role, error)
	// PutRole creates or replaces a custom role. Built-in roles are ErrConflict.
	PutRole(ctx context.Context, r Role) error
	// DeleteRole deletes a custom role no member holds (else ErrConflict).
	DeleteRole(ctx context.Context, workspaceID, name string) error
	// Members lists a workspace's members.
	Members(ctx context.Context, workspaceID string) ([]Member, error)
	// SetMemberRole changes a member's role.
	SetMemberRole(ctx context.Context, workspaceID, memberID, role string) error
	// RBACVersion is a counter that changes on every role, member or group
	// change in any workspace, so a cached authorizer knows when to reload.
	RBACVersion(ctx context.Context) (int64, error)
}

// Catalog holds the objects tools work on: models, audiences, destinations
// and syncs.
type Catalog interface {
	// Catalog reads. GetModel looks a reference with the form of a model
	// id (IsModelID) up by id only, any other by name only.
	ListModels(ctx context.Context, workspaceID string) ([]Model, error)
	GetModel(ctx context.Context, workspaceID, idOrName string) (Model, error)
	ListAudiences(ctx context.Context, workspaceID string) ([]Audience, error)
	GetAudience(ctx context.Context, workspaceID, id string) (Audience, error)
	ListDestinations(ctx context.Context, workspaceID string) ([]Destination, error)
	GetDestination(ctx context.Context, workspaceID, id string) (Destination, error)
	ListSyncs(ctx context.Context, workspaceID string) ([]Sync, error)
	GetSync(ctx context.Context, workspaceID, id string) (Sync, error)

	// Catalog writes. Create* assign an id when the object has none and
	// return ErrConflict for a name already taken in the workspace, and
	// ErrInvalid for a name that looks like an id (LooksLikeID), as do
	// UpdateModel and UpdateAudience.
	CreateModel(ctx context.Context, m Model) (Model, error)
	// UpdateModel replaces every field of the model with id m.ID except its
	// creation time, and returns it as stored. It returns ErrNotFound for
	// an unknown model, ErrInvalid for a bad field, ErrConflict for a name
	// taken by another model, and an *InUseError (ErrConflict) when other
	// models' relationships name the model by a name it gives up or a
	// column it drops, or when the source (table or SQL) changes while
	// syncs send audiences over the model.
	UpdateModel(ctx context.Context, m Model) (Model, error)
	// DeleteModel deletes a model. It returns ErrNotFound for an unknown
	// model and an *InUseError (ErrConflict) naming the audiences, their
	// syncs and the models with relationships that depend on it.
	DeleteModel(ctx context.Context, workspaceID, id string) error
	// ModelDependents lists what keeps a model from being deleted, as
	// DeleteModel would name it, without changing anything; ErrNotFound
	// for an unknown model.
	ModelDependents(ctx context.Context, workspaceID, id string) ([]Dependent, error)
	CreateAudience(ctx context.Context, a Audience) (Audience, error)
	CreateDestination(ctx context.Context, d Destination) (Destination, error)
	CreateSync(ctx context.Context, s Sync) (Sync, error)
	// UpdateSync replaces a sync's audience, destination, mode, schedule,
	// state and mappings (its owner and creation time stay) and returns it
	// as stored; ErrNotFound for an unknown sync, ErrInvalid as CreateSync.
	UpdateSync(ctx context.Context, s Sync) (Sync, error)
	// DeleteSync deletes a sync with its runs and lease; ErrNotFound for
	// an unknown sync.
	DeleteSync(ctx context.Context, workspaceID, id string) error
	// UpdateAudience replaces name, description and definition; a changed
	// definition is a new version. DeleteAudience is refused with an
	// *InUseError while a sync or another audience depends on it.
	UpdateAudience(ctx context.Context, a Audience) (Audience, error)
	DeleteAudience(ctx context.Context, workspaceID, id string) error
	// AudienceDependents lists what keeps an audience from being deleted,
	// as DeleteAudience would name it, without changing anything;
	// ErrNotFound for an unknown audience.
	AudienceDependents(ctx context.Context, workspaceID, id string) ([]Dependent, error)
}

// PIIClassification holds the PII levels people gave warehouse source
// columns, which model columns inherit (ApplyPII).
type PIIClassification interface {
	// PIIClasses lists the workspace's classified warehouse source
	// columns (DESIGN.md section 3); a column not listed is blocked.
	PIIClasses(ctx context.Context, workspaceID string) ([]PIIClass, error)
	// SetPIIClasses classifies source columns in one transaction, with the
	// call's pending audit event. Only people with governance.manage may
	// call it (the command line and the JSON API); it returns ErrInvalid
	// for a bad column or level, and nothing is written then.
	SetPIIClasses(ctx context.Context, workspaceID string, classes []PIIClass) error
}

// RateLimits holds the sliding windows of the guardrails' rate limits
// (guardrails.RateLimiter). Its counts are shared, and atomic, across the
// processes that use the store.
type RateLimits interface {
	// Take counts one use of a rate-limit bucket in the sliding window ending
	// at now if fewer than limit uses are in it (and consume is true), else
	// says how long until the next use is allowed.
	Take(ctx context.Context, bucket string, limit int, window time.Duration, now time.Time, consume bool) (bool, time.Duration, error)
	// Release removes one use of a bucket that Take counted at at, for a
	// call that did not go on; a use that is not there is no error.
	Release(ctx context.Context, bucket string, at time.Time) error
}

// KillSwitch holds each workspace's switch that freezes AI writes.
type KillSwitch interface {
	// WritesFrozen reports the workspace's ai_writes_frozen kill switch.
	WritesFrozen(ctx context.Context, workspaceID string) (bool, error)
	// SetWritesFrozen turns the kill switch on or off.
	SetWritesFrozen(ctx context.Context, workspaceID string, frozen bool) error
}

// Approvals holds the approval queue's requests; their state machine is
// ApprovalChange.Check (approval.go).
type Approvals interface {
	// CreateApproval stores a new pending approval, assigning its id.
	CreateApproval(ctx context.Context, a Approval) (Approval, error)
	// GetApproval returns one approval of the workspace.
	GetApproval(ctx context.Context, workspaceID, id string) (Approval, error)
	// ListApprovals returns approvals, newest first.
	ListApprovals(ctx context.Context, f ApprovalFilter) ([]Approval, error)
	// TransitionApproval moves an approval from c.From to c.To atomically:
	// ErrConflict when it is no longer in c.From (someone else moved it),
	// ErrInvalid for a transition the state machine does not have.
	TransitionApproval(ctx context.Context, workspaceID, id string, c ApprovalChange) (Approval, error)
}

// AccessFilters holds the row filters of groups (DESIGN.md section 3).
// Every change bumps RBACVersion in the same transaction, like group
// changes.
type AccessFilters interface {
	// PutAccessFilter creates a filter (assigning its id) or, when f.ID is
	// set, replaces that filter. The group is created when absent, as
	// AddToGroup does. It returns ErrInvalid for a filter Normalize
	// refuses and ErrNotFound for an unknown workspace or filter id.
	PutAccessFilter(ctx context.Context, f AccessFilter) (AccessFilter, error)
	// ListAccessFilters lists a workspace's filters by group, table and id.
	ListAccessFilters(ctx context.Context, workspaceID string) ([]AccessFilter, error)
	// DeleteAccessFilter deletes a filter; ErrNotFound when there is none.
	DeleteAccessFilter(ctx context.Context, workspaceID, id string) error
	// AccessFiltersFor returns the filters that apply to a principal: those
	// of the groups in p.Groups and of the groups the member is in now, so
	// a stale principal never sees more rows than the store allows; for an
	// agent also those of its human's groups, so it never sees more rows
	// than the human it acts for.
	AccessFiltersFor(ctx context.Context, p Principal) ([]AccessFilter, error)
}

// PolicySets holds each workspace's active AI policy set.
type PolicySets interface {
	// ApplyPolicySet makes ps the workspace's active policy set; an empty
	// Source goes back to the shipped defaults.
	ApplyPolicySet(ctx context.Context, workspaceID string, ps PolicySet) error
	// ActivePolicySet returns the active stored set, ErrNotFound for none.
	ActivePolicySet(ctx context.Context, workspaceID string) (PolicySet, error)
}

// AuditLog holds the hash-chained audit trail: appending to it
// (AuditAppender, all a writer needs) and reading it back.
type AuditLog interface {
	AuditAppender
	// Audit returns the events f selects, newest first unless f.Oldest.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}
