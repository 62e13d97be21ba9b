-- 0020: destination filters (DESIGN.md section 6), the rules people set
-- on what may flow to which destination. Empty match columns match
-- anything; destination_id is NULL for a filter on every destination, and
-- a filter of a destination goes with it.
CREATE TABLE destination_filters (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    priority       INTEGER NOT NULL,
    category       TEXT NOT NULL DEFAULT '',
    environment    TEXT NOT NULL DEFAULT '',
    destination_id TEXT,
    model_id       TEXT NOT NULL DEFAULT '',
    column_name    TEXT NOT NULL DEFAULT '',
    pii_level      TEXT NOT NULL DEFAULT '',
    effect         TEXT NOT NULL CHECK (effect IN ('block', 'drop', 'sha256', 'allow', 'allow_unconsented', 'rate_limit')),
    rate_limit     INTEGER NOT NULL DEFAULT 0 CHECK (rate_limit >= 0),
    per            TEXT NOT NULL DEFAULT '' CHECK (per IN ('', 'run', 'hour')),
    reason         TEXT NOT NULL CHECK (length(reason) > 0),
    created_at     TIMESTAMP NOT NULL,
    created_by     TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (workspace_id, destination_id) REFERENCES destinations (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX destination_filters_order ON destination_filters (workspace_id, priority, id);
