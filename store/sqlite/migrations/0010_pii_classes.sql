-- pii_classes: the PII level people gave each warehouse source column
-- ("schema.table.column", lowercase). A model column's level is derived
-- from the source columns it reads; an unclassified column is blocked.
-- Only the command line and the JSON API (governance.manage) write here.
CREATE TABLE pii_classes (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    column_ref   TEXT NOT NULL,
    level        TEXT NOT NULL CHECK (level IN ('none', 'redacted', 'sync_only', 'blocked')),
    updated_at   TIMESTAMP NOT NULL,
    updated_by   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, column_ref)
);
