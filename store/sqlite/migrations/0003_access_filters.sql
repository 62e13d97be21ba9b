-- 0003: access filters (DESIGN.md section 3): row-level filters a group
-- carries. A filter is a typed condition, never SQL: the warehouse compiles
-- it with the column quoted and the values bound. value is JSON: a string,
-- number or boolean, or a non-empty array of them for in and not_in.
-- Deleting a group deletes its filters; every change bumps rbac_version in
-- the same transaction, like group changes.

CREATE TABLE access_filters (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    group_id     TEXT NOT NULL,
    table_name   TEXT NOT NULL CHECK (table_name GLOB '?*.?*'),
    column_name  TEXT NOT NULL CHECK (length(column_name) > 0),
    operator     TEXT NOT NULL CHECK (operator IN ('equals', 'not_equals', 'in', 'not_in',
                     'greater_than', 'greater_or_equal', 'less_than', 'less_or_equal')),
    value        TEXT NOT NULL CHECK (json_valid(value) AND json_type(value) <> 'null'),
    created_at   TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, group_id) REFERENCES groups (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX access_filters_group ON access_filters (group_id);
CREATE INDEX access_filters_workspace ON access_filters (workspace_id);
