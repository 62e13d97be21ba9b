-- 0001: the metadata store's first schema.
--
-- Timestamps are TIMESTAMP columns written by the driver in UTC with
-- _time_format=sqlite ("2006-01-02 15:04:05.999999999+00:00"), so they read
-- back as time.Time and compare correctly as text. JSON values are TEXT
-- checked with json_valid. Enumerations are CHECK constraints; names are
-- unique per workspace. Composite foreign keys on (workspace_id, id) keep
-- every reference inside its own workspace.

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

-- rbac_version is one row; every role, member or group change bumps it in
-- the same transaction, so a cached authorizer knows when to reload.
CREATE TABLE rbac_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO rbac_version (id, version) VALUES (1, 1);

CREATE TABLE roles (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9_-]*'),
    built_in     INTEGER NOT NULL DEFAULT 0 CHECK (built_in IN (0, 1)),
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

CREATE TABLE role_permissions (
    workspace_id TEXT NOT NULL,
    role         TEXT NOT NULL,
    permission   TEXT NOT NULL CHECK (length(permission) > 0),
    PRIMARY KEY (workspace_id, role, permission),
    FOREIGN KEY (workspace_id, role) REFERENCES roles (workspace_id, name) ON DELETE CASCADE
);

CREATE TABLE members (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name            TEXT NOT NULL CHECK (length(name) > 0),
    kind            TEXT NOT NULL CHECK (kind IN ('user', 'agent')),
    role            TEXT NOT NULL,
    -- owner_member_id is the human an agent acts for.
    owner_member_id TEXT,
    created_at      TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, id),
    CHECK (kind = 'agent' OR owner_member_id IS NULL),
    FOREIGN KEY (workspace_id, role) REFERENCES roles (workspace_id, name),
    FOREIGN KEY (workspace_id, owner_member_id) REFERENCES members (workspace_id, id)
);
CREATE INDEX members_role ON members (workspace_id, role);
CREATE INDEX members_owner ON members (owner_member_id) WHERE owner_member_id IS NOT NULL;

CREATE TABLE groups (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) > 0),
    created_at   TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, id)
);

CREATE TABLE group_members (
    workspace_id TEXT NOT NULL,
    group_id     TEXT NOT NULL,
    member_id    TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id),
    FOREIGN KEY (workspace_id, group_id) REFERENCES groups (workspace_id, id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, member_id) REFERENCES members (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_member ON group_members (member_id, group_id);

-- api_keys holds bcrypt hashes, never secrets. prefix is the public lookup
-- part of a key, unique across workspaces because lookup happens before the
-- workspace is known.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    member_id    TEXT NOT NULL,
    name         TEXT NOT NULL CHECK (length(name) > 0),
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'agent')),
    prefix       TEXT NOT NULL UNIQUE CHECK (length(prefix) > 0),
    hash         BLOB NOT NULL CHECK (length(hash) > 0),
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP,
    revoked_at   TIMESTAMP,
    last_used_at TIMESTAMP,
    replaced_by  TEXT REFERENCES api_keys (id),
    FOREIGN KEY (workspace_id, member_id) REFERENCES members (workspace_id, id)
);
CREATE INDEX api_keys_member ON api_keys (member_id);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at);

CREATE TABLE models (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name          TEXT NOT NULL CHECK (length(name) > 0),
    description   TEXT NOT NULL DEFAULT '',
    table_name    TEXT NOT NULL DEFAULT '',
    sql           TEXT NOT NULL DEFAULT '',
    primary_key   TEXT NOT NULL CHECK (length(primary_key) > 0),
    columns       TEXT NOT NULL CHECK (json_valid(columns) AND json_type(columns) = 'array'),
    relationships TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(relationships) AND json_type(relationships) = 'array'),
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, id),
    -- A model is a table or a query, not both.
    CHECK ((table_name = '') <> (sql = ''))
);

CREATE TABLE audiences (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) > 0),
    description  TEXT NOT NULL DEFAULT '',
    model_id     TEXT NOT NULL,
    definition   TEXT NOT NULL CHECK (json_valid(definition)),
    version      INTEGER NOT NULL CHECK (version >= 1),
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, model_id) REFERENCES models (workspace_id, id)
);
CREATE INDEX audiences_model ON audiences (model_id);

-- audience_versions keeps every definition an audience has had.
CREATE TABLE audience_versions (
    audience_id TEXT NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL CHECK (version >= 1),
    definition  TEXT NOT NULL CHECK (json_valid(definition)),
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (audience_id, version)
);

-- destinations: credentials are sealed with AES-256-GCM by the caller under
-- the master key named by credentials_key_id; NULL when there are none.
CREATE TABLE destinations (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name               TEXT NOT NULL CHECK (length(name) > 0),
    type               TEXT NOT NULL CHECK (length(type) > 0),
    category           TEXT NOT NULL CHECK (category IN ('advertising', 'crm', 'marketing', 'analytics', 'other')),
    environment        TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    config             TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config) AND json_type(config) = 'object'),
    credentials        BLOB,
    credentials_key_id TEXT,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, id),
    CHECK ((credentials IS NULL) = (credentials_key_id IS NULL))
);

CREATE TABLE syncs (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    audience_id    TEXT NOT NULL,
    destination_id TEXT NOT NULL,
    mode           TEXT NOT NULL CHECK (mode IN ('upsert', 'mirror', 'append')),
    schedule       TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL CHECK (state IN ('active', 'paused')),
    mappings       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(mappings) AND json_type(mappings) = 'array'),
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, audience_id) REFERENCES audiences (workspace_id, id),
    FOREIGN KEY (workspace_id, destination_id) REFERENCES destinations (workspace_id, id)
);
CREATE INDEX syncs_audience ON syncs (audience_id);
CREATE INDEX syncs_destination ON syncs (destination_id);

-- audit_events: one row per operation (DESIGN.md section 8). workspace_id
-- has no foreign key: a refused key has no workspace, and an audit record
-- must never be lost to a constraint. prev_hash and hash are filled by the
-- hash chain once it exists.
CREATE TABLE audit_events (
    id            TEXT PRIMARY KEY,
    at            TIMESTAMP NOT NULL,
    workspace_id  TEXT NOT NULL DEFAULT '',
    actor_type    TEXT NOT NULL DEFAULT '',
    actor_id      TEXT NOT NULL DEFAULT '',
    actor_name    TEXT NOT NULL DEFAULT '',
    key_prefix    TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL CHECK (source IN ('AI', 'API', 'UI', 'CLI', 'SYSTEM')),
    action        TEXT NOT NULL CHECK (length(action) > 0),
    tool          TEXT NOT NULL DEFAULT '',
    resource_type TEXT NOT NULL DEFAULT '',
    resource_id   TEXT NOT NULL DEFAULT '',
    decision      TEXT NOT NULL CHECK (decision IN ('allowed', 'denied', 'approval_required', 'executed', 'failed')),
    rules         TEXT CHECK (rules IS NULL OR (json_valid(rules) AND json_type(rules) = 'array')),
    reason        TEXT NOT NULL DEFAULT '',
    approval_id   TEXT NOT NULL DEFAULT '',
    args          TEXT CHECK (args IS NULL OR (json_valid(args) AND json_type(args) = 'object')),
    result        TEXT NOT NULL DEFAULT '',
    latency_ms    REAL NOT NULL DEFAULT 0,
    client        TEXT NOT NULL DEFAULT '',
    session_id    TEXT NOT NULL DEFAULT '',
    request_id    TEXT NOT NULL DEFAULT '',
    prev_hash     TEXT,
    hash          TEXT
);
CREATE INDEX audit_events_workspace_at ON audit_events (workspace_id, at, id);
CREATE INDEX audit_events_at ON audit_events (at, id);
