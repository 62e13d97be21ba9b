-- policy_sets: AI policy files applied by people (signalsmith policies
-- apply). At most one set per workspace is active; none active means the
-- shipped defaults. Old sets are kept as history.
CREATE TABLE policy_sets (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    version      TEXT NOT NULL,
    source       TEXT NOT NULL,
    applied_by   TEXT NOT NULL,
    applied_at   TIMESTAMP NOT NULL,
    active       INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1))
);
CREATE UNIQUE INDEX policy_sets_one_active ON policy_sets (workspace_id) WHERE active = 1;
